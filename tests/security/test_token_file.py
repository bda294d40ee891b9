"""The API token file: a symbolic link or another user's file is refused (the daemon does not start); a file
readable by group or others is replaced by a new token, with a WARNING; a configured token is unaffected."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from engine.service import ensure_token
from tests.service._proc import cli

EVIL = "attacker-chosen-token-0123456789"


def test_symlinked_token_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text(EVIL + "\n")
    target.chmod(0o600)
    path = tmp_path / "api-token"
    path.symlink_to(target)
    with pytest.raises(ValueError, match="symbolic link"):
        ensure_token(None, path)
    dangling = tmp_path / "dangling-token"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="symbolic link"):
        ensure_token(None, dangling)
    assert not (tmp_path / "nowhere").exists()  # nothing written through the link


def test_token_file_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "api-token"
    path.write_text(EVIL + "\n")
    path.chmod(0o600)
    monkeypatch.setattr(os, "geteuid", lambda: path.stat().st_uid + 1)
    with pytest.raises(ValueError, match="another user"):
        ensure_token(None, path)


def test_group_readable_token_file_is_replaced_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "api-token"
    path.write_text(EVIL + "\n")
    path.chmod(0o640)
    with caplog.at_level(logging.WARNING):
        source = ensure_token(None, path)
    assert source.generated and source.token != EVIL
    assert path.read_text().strip() == source.token and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert any("may have been read" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert ensure_token(None, path).token == source.token  # 0600 now: reused


def test_configured_token_ignores_the_file(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    path.symlink_to(tmp_path / "nowhere")
    assert ensure_token("a-configured-token-of-enough-length", path).token == "a-configured-token-of-enough-length"


@pytest.mark.timeout(90)
def test_daemon_refuses_a_symlinked_token_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").write_text(EVIL + "\n")
    (tmp_path / "data" / "api-token").symlink_to(tmp_path / "elsewhere")
    done = cli(tmp_path, "daemon")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "daemon not started: API token:" in done.stderr and "symbolic link" in done.stderr
    assert "control API listening" not in done.stdout
