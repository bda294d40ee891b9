"""The daemon's banner names the configuration it was started with; a SQLite database it cannot create is one line.

Before: started with a configuration (`run.py daemon live.toml`), the banner offered `run.py order buy BTC/USDT 0.001`,
which read the default configuration, found no token at its `api.token_path` and failed with exit 5 "no API token …
start the daemon first" while the daemon ran. And with `database.url = sqlite:////proc/nonexistent/engine.sqlite3`
the daemon died on a FileNotFoundError traceback from the instance lock's mkdir.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.config import load_config
from engine.service._daemon import EXIT_START_FAILED, _Daemon, _leftover_open_orders, _StartFailed
from engine.service._token import TokenSource
from tests.service._proc import cli

pytestmark = pytest.mark.timeout(120)
PROC = pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")


def _banner(loaded: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> list[str]:
    monkeypatch.setattr(sys, "argv", ["run.py", "daemon"])
    daemon = _Daemon(loaded, signals=None)  # type: ignore[arg-type] - the banner uses no signal
    daemon._banner("http://127.0.0.1:8787", TokenSource("x" * 32, "data/api-token"))
    return capsys.readouterr().out.splitlines()


def test_the_banner_commands_carry_the_daemons_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my config.toml").write_text('[api]\ntoken_path = "secrets/token"\n', encoding="utf-8")
    lines = _banner(load_config("my config.toml", {}), monkeypatch, capsys)
    first = next(line for line in lines if line.startswith("first order:"))
    assert first.endswith("run.py order buy BTC/USDT 0.001 --config 'my config.toml'"), first
    assert shlex.split(first.split(":", 1)[1])[-2:] == ["--config", "my config.toml"]
    watch = next(line for line in lines if line.startswith("watch events:"))
    assert "watch --config 'my config.toml'" in watch and "status --config 'my config.toml'" in watch


def test_without_a_config_the_banner_commands_have_no_config_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    lines = _banner(load_config(None, {}), monkeypatch, capsys)
    assert not any("--config" in line for line in lines)


@PROC
def test_a_sqlite_directory_that_cannot_be_created_stops_the_start_in_one_line() -> None:
    # What the daemon does if the directory went between check-config (which refuses it now) and the start.
    with pytest.raises(_StartFailed) as failed:
        _leftover_open_orders("sqlite:////proc/nonexistent/engine.sqlite3")
    assert str(failed.value) == (
        "database: cannot create or open /proc/nonexistent: No such file or directory; check database.url"
    )


@PROC
def test_the_daemon_refuses_a_sqlite_directory_that_cannot_be_created_without_a_traceback(tmp_path: Path) -> None:
    result = cli(tmp_path, "daemon", FREQTRADE__DATABASE__URL="sqlite:////proc/nonexistent/engine.sqlite3")
    assert result.returncode == EXIT_START_FAILED
    assert "database.url [env FREQTRADE__DATABASE__URL]: the directory /proc/nonexistent does not exist" in (
        result.stderr
    )
    assert "daemon not started: the configuration is invalid" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
