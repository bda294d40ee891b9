"""Every ``*_FILE`` secret whose file is empty (or only whitespace) is refused the same clear way at load.

Before: only ``exchange.secret_file`` was refused (by the key check, "got an empty value"). An empty
``alerts.telegram_token_file`` passed check-config (show-config printed ``telegram_token = "REDACTED"``, the daemon
logged "alerts: log and telegram" and could deliver nothing), and an empty ``api.token_file`` silently replaced a
token set in the TOML with none (the daemon then generated one, and clients with the configured token got 401).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.config import SECRET_FIELDS, resolve_config

FIELDS = sorted(SECRET_FIELDS)
MESSAGE = "the secret file is empty (or only whitespace): got an empty value"


@pytest.mark.parametrize("content", ["", "\n", "  \t\r\n  "])
@pytest.mark.parametrize(("section", "key"), FIELDS)
def test_an_empty_secret_file_named_in_the_environment_is_refused(
    tmp_path: Path, section: str, key: str, content: str
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(content, encoding="utf-8")
    name = f"FREQTRADE__{section.upper()}__{key.upper()}_FILE"
    loaded, problems = resolve_config(None, {name: str(secret_file)})
    assert loaded is None
    assert [(p.path, p.source, p.message) for p in problems if p.path.endswith("_file")] == [
        (f"{section}.{key}_file", f"env {name}", MESSAGE)
    ]


@pytest.mark.parametrize(("section", "key"), FIELDS)
def test_an_empty_secret_file_named_in_the_toml_is_refused(tmp_path: Path, section: str, key: str) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(f'[{section}]\n{key}_file = "{secret_file}"\n', encoding="utf-8")
    loaded, problems = resolve_config(config, {})
    assert loaded is None
    assert [p.message for p in problems if p.path == f"{section}.{key}_file"] == [MESSAGE]


def test_an_empty_token_file_does_not_unset_the_token_of_the_toml(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text('[api]\ntoken = "abcdefghijklmnopqrstuvwxyz"\n', encoding="utf-8")
    loaded, problems = resolve_config(config, {"FREQTRADE__API__TOKEN_FILE": str(empty)})
    assert loaded is None
    assert [p.path for p in problems] == ["api.token_file"]


def test_check_config_lists_an_empty_telegram_token_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "telegram"
    empty.write_text("", encoding="utf-8")
    monkeypatch.setenv("FREQTRADE__ALERTS__TELEGRAM_TOKEN_FILE", str(empty))
    monkeypatch.setenv("FREQTRADE__ALERTS__TELEGRAM_CHAT_ID", "12345")
    assert main(["check-config"]) == 1
    err = capsys.readouterr().err
    assert f"alerts.telegram_token_file [env FREQTRADE__ALERTS__TELEGRAM_TOKEN_FILE]: {MESSAGE}" in err


def test_a_secret_file_with_a_secret_and_a_trailing_newline_is_read(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("abcdefghijklmnopqrstuvwxyz\n", encoding="utf-8")
    loaded, problems = resolve_config(None, {"FREQTRADE__API__TOKEN_FILE": str(token_file)})
    assert not problems and loaded is not None and loaded.config.api.token is not None
    assert loaded.config.api.token.get_secret_value() == "abcdefghijklmnopqrstuvwxyz"
