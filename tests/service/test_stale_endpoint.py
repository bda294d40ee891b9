"""After a kill -9 the endpoint file still names the dead daemon: the CLI says what the file says (its URL and pid)
and that the process is gone, instead of only "not reachable" at the configured port the daemon never used."""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.service._commands import EXIT_UNREACHABLE, run_status, run_watch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


@pytest.fixture
def stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    token_path = tmp_path / "api-token"
    token_path.write_text("t0ken-stale-endpoint\n")
    token_path.chmod(0o600)
    old_url, pid = f"http://127.0.0.1:{_free_port()}", _dead_pid()
    (tmp_path / "api-endpoint.json").write_text(json.dumps({"url": old_url, "pid": pid}))
    for name in [n for n in os.environ if n.upper().startswith("FREQTRADE__")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FREQTRADE__API__TOKEN_PATH", str(token_path))
    monkeypatch.setenv("FREQTRADE__API__PORT", str(_free_port()))
    return old_url, pid


def _args(**extra: object) -> argparse.Namespace:
    return argparse.Namespace(config_opt=None, url=None, token_file=None, json=False, pair=None, count=None, **extra)


@pytest.mark.parametrize("run", [run_status, run_watch], ids=["status", "watch"])
def test_a_stale_endpoint_file_is_named_with_its_dead_pid(
    run: object, stale: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    old_url, pid = stale
    assert callable(run)
    assert run(_args(), io.StringIO()) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "not reachable" in err
    assert f"names the daemon at {old_url} with pid {pid}, which is not running: the file is stale" in err, err


def test_an_explicit_url_is_not_blamed_on_the_file(stale: tuple[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    assert run_status(argparse.Namespace(config_opt=None, url=url, token_file=None, json=False, pair=None),
                      io.StringIO()) == EXIT_UNREACHABLE  # fmt: skip
    assert "stale" not in capsys.readouterr().err
