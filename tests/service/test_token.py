"""The control API token file and the endpoint file clients use to find the daemon."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.service import endpoint_file_for, ensure_token, read_endpoint, read_token_file
from engine.service._token import remove_endpoint, write_endpoint


def test_generated_token_is_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "api-token"
    first = ensure_token(None, path)
    assert first.generated and first.origin == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.token) >= 32 and first.token not in repr(first)
    second = ensure_token(None, path)
    assert second.token == first.token and not second.generated


def test_configured_token_wins_and_writes_no_file(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    source = ensure_token("a-configured-token-of-enough-length", path)
    assert source.token == "a-configured-token-of-enough-length" and source.origin.startswith("configuration")
    assert not path.exists()
    with pytest.raises(ValueError, match="at least 16"):
        ensure_token("short", path)


def test_world_readable_token_file_is_replaced_and_empty_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    path.write_text("x" * 40 + "\n")
    path.chmod(0o644)
    source = ensure_token(None, path)
    assert source.generated and source.token != "x" * 40  # it may have been read: a new one replaces it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text().strip() == source.token
    path.write_text("\n")
    with pytest.raises(ValueError, match="shorter than"):
        read_token_file(path)


def test_endpoint_file_of_a_dead_process_is_ignored(tmp_path: Path) -> None:
    path = endpoint_file_for(tmp_path / "api-token")
    write_endpoint(path, "http://127.0.0.1:1234")
    assert read_endpoint(path) == "http://127.0.0.1:1234"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    path.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": int(gone.stdout)}))
    assert read_endpoint(path) is None
    path.write_text("{broken")
    assert read_endpoint(path) is None
    write_endpoint(path, "http://127.0.0.1:1234")
    remove_endpoint(path)
    assert not path.exists()


def test_a_token_whose_write_failed_leaves_no_file_to_block_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk at the first start left an empty token file: every later start was refused ("its token is shorter
    # than 16 characters") until someone deleted it by hand (disk-full review).
    import os

    path = tmp_path / "api-token"
    real_fsync = os.fsync

    def full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        ensure_token(None, path)
    assert not path.exists()
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert len(ensure_token(None, path).token) >= 16  # the space is back: a new token, no hand work
