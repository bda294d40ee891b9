"""The spool when the disk refuses a write part-way: the file is left as it was, so the retry loses nothing."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from io import FileIO
from pathlib import Path
from typing import Any

import pytest

from actors.persistence import Durability, NotDurableError, PersistenceCore, Spool
from tests.db import _records as rec

_ROOT = Path(__file__).resolve().parents[2]


class FillingDisk:
    """The spool's file on a disk with `room` bytes left: a write puts in what fits, then fails (ENOSPC)."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.real: FileIO | None = None

    def write(self, data: Any) -> int:
        assert self.real is not None
        part = bytes(data)[: self.room]
        self.real.write(part)
        self.real.flush()
        self.room -= len(part)
        if len(part) < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(part)

    def flush(self) -> None:
        assert self.real is not None
        self.real.flush()

    def fileno(self) -> int:
        assert self.real is not None
        return self.real.fileno()


def _filling_disk(monkeypatch: pytest.MonkeyPatch, room: int) -> FillingDisk:
    """From now on the spool writes through a `FillingDisk` (the test frees room by raising its `room`)."""
    disk = FillingDisk(room)
    real_open = Spool._open

    def open_on_filling_disk(spool: Spool) -> Any:
        disk.real = real_open(spool)
        return disk

    monkeypatch.setattr(Spool, "_open", open_on_filling_disk)
    return disk


def _ids(path: Path) -> list[str]:
    return [r.client_order_id for r in Spool(path).read()]


def test_a_write_ahead_the_full_disk_cut_short_is_spooled_whole_once_the_disk_has_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool" / "spool.jsonl"
    # The database is a directory SQLite cannot open: persistence spools from the start.
    core = PersistenceCore(f"sqlite:///{tmp_path}", spool)
    core.start()
    core.accept(rec.order("c-0"))
    assert core.flush() is Durability.SPOOL
    disk = _filling_disk(monkeypatch, room=100)  # not even the first record of the next write fits
    orders = [rec.order(f"c-{n}") for n in range(1, 60)]  # far past the 8 KiB a buffered file holds back
    with pytest.raises(NotDurableError, match="only in memory"):
        core.commit_now(orders)
    disk.room = 10**9  # room again (the same open file: the retry appends where the failed write stopped)
    assert core.flush() is Durability.SPOOL
    core.stop()
    assert _ids(spool) == [f"c-{n}" for n in range(60)]


def test_when_the_failed_write_cannot_be_cut_off_the_next_one_starts_a_new_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    spool.append([rec.order("c-0")])
    disk = _filling_disk(monkeypatch, room=100)

    def refused(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "ftruncate", refused)
    with pytest.raises(OSError, match="No space"):
        spool.append([rec.order("c-1"), rec.order("c-2")])
    disk.room = 10**9
    spool.append([rec.order("c-1"), rec.order("c-2")])
    spool.close()
    assert _ids(path) == ["c-0", "c-1", "c-2"]  # the fragment is skipped, the retry's first record is not


_CHILD = """
import resource, signal, sys
from pathlib import Path
from actors.persistence import Spool
from tests.db import _records as rec

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
spool = Spool(Path(sys.argv[1]))
spool.append([rec.order("c-0")])
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (spool.size + 100, hard))
orders = [rec.order(f"c-{n}") for n in range(1, 60)]
try:
    spool.append(orders)
except OSError:
    pass
else:
    sys.exit("the write past the file size limit did not fail")
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
spool.append(orders)
spool.close()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="file size limit semantics of Linux")
def test_a_write_the_kernel_cuts_short_leaves_the_spool_as_it_was(tmp_path: Path) -> None:
    # The real thing: the kernel writes what the file size limit lets through, then refuses the rest.
    path = tmp_path / "spool.jsonl"
    subprocess.run([sys.executable, "-c", _CHILD, str(path)], cwd=_ROOT, check=True, timeout=60)
    assert _ids(path) == [f"c-{n}" for n in range(60)]
