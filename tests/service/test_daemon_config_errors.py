"""The daemon stops with a clear message and exit 1 on a configuration it cannot run with, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from engine.service._daemon import EXIT_START_FAILED, _leftover_open_orders, _StartFailed
from tests.service._proc import cli

pytestmark = pytest.mark.timeout(120)


def test_a_log_file_that_is_a_directory_stops_the_daemon_with_a_clear_message(tmp_path: Path) -> None:
    # Before: IsADirectoryError traceback from setup_logging.
    result = cli(tmp_path, "daemon", FREQTRADE__LOGGING__FILE=str(tmp_path))
    assert result.returncode == EXIT_START_FAILED
    assert "logging.file [env FREQTRADE__LOGGING__FILE]:" in result.stderr and "is a directory" in result.stderr
    assert "daemon not started: the configuration is invalid" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_a_log_file_that_cannot_be_created_stops_the_daemon_with_a_clear_message(tmp_path: Path) -> None:
    # Before: FileNotFoundError traceback from the log directory's mkdir.
    result = cli(tmp_path, "daemon", FREQTRADE__LOGGING__FILE="/proc/nope/x.log")
    assert result.returncode == EXIT_START_FAILED
    assert "cannot open the log file /proc/nope/x.log" in result.stderr
    assert "daemon not started: the configuration is invalid" in result.stderr
    assert "Traceback" not in result.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # Refused by check-config now, but the daemon's own read must not take it for an outage either.
        ("postgresql://bot@127.0.0.1:notaport/engine", "database: malformed database URL"),
        # Accepted by the configuration (no user is needed to validate it), refused when connecting.
        ("postgresql://127.0.0.1/engine", "database: postgresql URL needs a user"),
    ],
)
def test_a_malformed_database_url_is_a_start_failure_not_a_retry(
    url: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "database: not readable before start (DatabaseUrlError); the engine will retry", then the engine
    # failed on the same URL with an "unexpected DatabaseUrlError".
    with pytest.raises(_StartFailed) as failed:
        _leftover_open_orders(url)
    assert str(failed.value).startswith(message)
    assert "retry" not in capsys.readouterr().out


def test_an_unreachable_database_is_not_promised_a_retry(capsys: pytest.CaptureFixture[str]) -> None:
    # The engine's crash recovery reads the database before it starts: it does not start while it stays down.
    assert _leftover_open_orders(f"postgresql://bot@127.0.0.1:{_closed_port()}/engine") == -1
    out = capsys.readouterr().out
    assert "database: unreachable before start" in out and "cannot start without it" in out
    assert "will retry" not in out
