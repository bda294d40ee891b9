"""Every file and directory the daemon creates is its owner's only, even when started with umask 022."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from tests.service._proc import DaemonProcess

pytestmark = pytest.mark.timeout(120)


def test_files_the_daemon_creates_are_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask: 0644 files, 0755 directories unless the daemon sets its own
    try:
        daemon = DaemonProcess(tmp_path, FREQTRADE__LOGGING__FILE=str(tmp_path / "logs" / "engine.log"))
    finally:
        os.umask(previous)
    try:
        created = sorted(p for p in tmp_path.rglob("*"))
        names = {p.relative_to(tmp_path).as_posix() for p in created}
        assert {"data", "data/spool", "engine.sqlite3", "data/api-token", "logs/engine.log"} <= names, names
        assert any(n.endswith("api-endpoint.json") for n in names), names
        loose = {
            p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode))
            for p in created
            if stat.S_IMODE(p.stat().st_mode) & 0o077
        }
        assert loose == {}, f"readable by group/others: {loose}"
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    finally:
        daemon.kill()
