"""Records held in memory while the spool refuses writes (disk full) and the database stays down: they go back to
the spool once it takes writes again, and those still held when persistence stops are counted as lost."""

from __future__ import annotations

import errno
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from actors.persistence import Health, HealthReport, PersistenceCore, PersistenceSettings, Spool
from db import Record
from tests.db import _records as rec


class Disk:
    """The spool's disk: `full` refuses every append (ENOSPC), as a full disk does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        real_append = Spool.append

        def append(spool: Spool, records: Sequence[Record]) -> None:
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            real_append(spool, records)

        monkeypatch.setattr(Spool, "append", append)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    return Disk(monkeypatch)


@pytest.fixture
def errors() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m.record["message"])), level="ERROR")
    yield lines
    logger.remove(sink)


def _down_core(tmp_path: Path, reports: list[HealthReport], **settings: Any) -> PersistenceCore:
    """A core whose database stays down: a directory SQLite cannot open."""
    opts = {"batch_size": 2, "max_retry_ticks": 4, **settings}
    spool = tmp_path / "spool" / "spool.jsonl"
    core = PersistenceCore(
        f"sqlite:///{tmp_path}", spool, listener=reports.append, settings=PersistenceSettings(**opts)
    )
    core.start()
    return core


def test_records_held_in_memory_go_back_to_the_spool_while_the_database_stays_down(
    tmp_path: Path, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: list[HealthReport] = []
    core = _down_core(tmp_path, reports)
    disk.full = True
    fills = [rec.fill(n) for n in range(1, 6)]
    core.accept_many(fills)
    assert reports[-1].health is Health.SPOOL_FULL
    assert reports[-1].accepting_orders is False
    for _ in range(8):  # ticks while the disk is still full: the records stay held, intake stays halted
        core.tick()
    assert reports[-1].health is Health.SPOOL_FULL
    synced: list[int] = []
    real_sync = Spool.sync

    def sync(spool: Spool) -> None:
        real_sync(spool)
        synced.append(spool.path.stat().st_size)

    monkeypatch.setattr(Spool, "sync", sync)
    disk.full = False  # room again; the database is still down and nothing else is told (intake is halted)
    for _ in range(8):  # at most max_retry_ticks ticks to the next attempt
        core.tick()
        if reports[-1].health is not Health.SPOOL_FULL:
            break
    assert reports[-1] == HealthReport(Health.DEGRADED, True, reports[-1].reason, 5)
    spool = tmp_path / "spool" / "spool.jsonl"
    assert list(Spool(spool).read()) == fills
    assert synced[-1:] == [spool.stat().st_size]  # fsynced, not only written: they survive a power cut
    core.accept(rec.fill(6))  # straight to the spool again, behind them
    core.stop()
    assert [f.trade_id for f in Spool(spool).read()] == [1, 2, 3, 4, 5, 6]
    assert core.lost == 0


def test_records_still_held_in_memory_at_stop_are_counted_lost_and_logged(
    tmp_path: Path, disk: Disk, errors: list[str]
) -> None:
    core = _down_core(tmp_path, [], memory_limit=10)
    core.accept(rec.fill(1))  # spooled
    disk.full = True
    core.accept_many([rec.fill(n) for n in range(2, 5)])  # held in memory
    core.stop()
    assert core.lost == 3
    assert any("held only in memory" in line and "lost=3" in line for line in errors)
    assert any(line.startswith("persistence stopped") and "lost=3" in line for line in errors)
    assert [f.trade_id for f in Spool(tmp_path / "spool" / "spool.jsonl").read()] == [1]
