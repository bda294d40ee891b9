"""The daemon stops with a clear message and exit 1 on a configuration it cannot run with, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.service._daemon import EXIT_START_FAILED
from tests.service._proc import RUN, daemon_env

pytestmark = pytest.mark.timeout(120)


def _daemon(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, RUN, "daemon"],
        cwd=tmp_path,
        env=daemon_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_a_log_file_that_is_a_directory_stops_the_daemon_with_a_clear_message(tmp_path: Path) -> None:
    # Before: IsADirectoryError traceback from setup_logging.
    result = _daemon(tmp_path, FREQTRADE__LOGGING__FILE=str(tmp_path))
    assert result.returncode == EXIT_START_FAILED
    assert "logging.file [env FREQTRADE__LOGGING__FILE]:" in result.stderr and "is a directory" in result.stderr
    assert "daemon not started: the configuration is invalid" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_a_log_file_that_cannot_be_created_stops_the_daemon_with_a_clear_message(tmp_path: Path) -> None:
    # Before: FileNotFoundError traceback from the log directory's mkdir.
    result = _daemon(tmp_path, FREQTRADE__LOGGING__FILE="/proc/nope/x.log")
    assert result.returncode == EXIT_START_FAILED
    assert "cannot open the log file /proc/nope/x.log" in result.stderr
    assert "daemon not started: the configuration is invalid" in result.stderr
    assert "Traceback" not in result.stderr
