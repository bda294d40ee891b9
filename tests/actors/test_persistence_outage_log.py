"""While the database is down, persistence retries the connection with a back-off that grows to a few seconds
(not 16 ticks of the 20 ms batch interval: an attempt and a WARNING every 0.3 s), and logs the outage as one
WARNING when it begins, then at most one line per 30 s counting the failed attempts, and one when it is over."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
from loguru import logger

import actors.persistence._core as core_module
from actors.persistence import Health, HealthReport, PersistenceCore, PersistenceSettings
from db import DatabaseUnavailableError
from engine.clock import ManualClock
from tests.db import _records as rec


class Outage:
    """Connects and writes fail as against a dead server while `down`; `connects` counts the attempts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        self.connects = 0
        real_open, real_write = core_module.open_connection, core_module.BatchWriter.write

        def open_connection(db: peewee.Database, spec: Any) -> None:
            self.connects += 1
            if self.down:
                raise DatabaseUnavailableError("cannot reach database (test outage)\nsecond line")
            real_open(db, spec)

        def write(writer: Any, records: Any) -> Any:
            if self.down:
                raise peewee.OperationalError("server closed the connection unexpectedly (test outage)")
            return real_write(writer, records)

        monkeypatch.setattr(core_module, "open_connection", open_connection)
        monkeypatch.setattr(core_module.BatchWriter, "write", write)


@pytest.fixture
def outage(monkeypatch: pytest.MonkeyPatch) -> Outage:
    return Outage(monkeypatch)


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(m.record["message"]), level="WARNING")
    try:
        yield seen
    finally:
        logger.remove(sink)


def _run(core: PersistenceCore, clock: ManualClock, outage: Outage, seconds: float, tick_ms: int) -> list[int]:
    """Tick every `tick_ms` for `seconds` on the manual clock; the clock's times of the reconnect attempts."""
    attempts = []
    for _ in range(int(seconds * 1000 / tick_ms)):
        clock.advance(tick_ms)
        before = outage.connects
        core.tick()
        if outage.connects != before:
            attempts.append(clock.now_ms())
    return attempts


def test_an_outage_is_retried_every_few_seconds_and_logged_once_then_every_30_s(
    sqlite_url: str, tmp_path: Path, outage: Outage, warnings: list[str]
) -> None:
    clock = ManualClock(1_700_000_000_000)
    reports: list[HealthReport] = []
    core = PersistenceCore(
        sqlite_url, tmp_path / "spool.jsonl", listener=reports.append, settings=PersistenceSettings(), clock=clock
    )
    core.start()
    try:
        outage.down = True
        core.accept(rec.fill(1))
        core.flush()  # the write fails: spooled, degraded
        assert core.degraded
        attempts = _run(core, clock, outage, 25, tick_ms=20)
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert len(attempts) <= 15 and max(gaps) == 5_000  # the back-off grew to its 5 s cap, no further
        cannot = [w for w in warnings if "cannot connect" in w]
        assert len(cannot) == 1, cannot  # the outage's first failed attempt only
        attempts += _run(core, clock, outage, 40, tick_ms=20)  # 65 s into the outage
        still = [w for w in warnings if "still cannot connect" in w]
        assert len(still) == 2 and all("failed attempts in the last" in w for w in still)
        assert not [w for w in warnings if "\n" in w]
        outage.down = False
        _run(core, clock, outage, 5, tick_ms=20)
        assert not core.degraded and reports[-1].health is Health.OK
        assert len([w for w in warnings if "connected again after" in w]) == 1
    finally:
        core.stop()


def test_a_long_batch_interval_does_not_stretch_the_back_off(sqlite_url: str, tmp_path: Path, outage: Outage) -> None:
    # The cap is in the clock's time too: 250 ticks of a 1 s interval would be four minutes between attempts.
    clock = ManualClock(1_700_000_000_000)
    core = PersistenceCore(sqlite_url, tmp_path / "spool.jsonl", settings=PersistenceSettings(), clock=clock)
    core.start()
    try:
        outage.down = True
        core.accept(rec.fill(1))
        core.flush()
        attempts = _run(core, clock, outage, 60, tick_ms=1_000)
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert max(gaps) == 5_000
    finally:
        core.stop()


def test_a_database_that_takes_the_connection_but_not_the_writes_is_logged_as_an_outage(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warnings: list[str]
) -> None:
    # Its disk full: every reconnect connected, then the replay failed, and each logged a WARNING (about 720 an hour;
    # disk-full review). The failed replays are counted like failed connects: a line when it begins, then one per 30 s.
    real_open = core_module.open_connection
    outage = Outage(monkeypatch)
    clock = ManualClock(1_700_000_000_000)
    core = PersistenceCore(sqlite_url, tmp_path / "spool.jsonl", settings=PersistenceSettings(), clock=clock)
    core.start()
    try:
        outage.down = True
        core.accept(rec.fill(1))
        core.flush()  # spooled, degraded
        monkeypatch.setattr(core_module, "open_connection", real_open)  # it connects; only its writes fail
        _run(core, clock, outage, 120, tick_ms=100)
        assert core.degraded
        assert len(warnings) <= 1 + 1 + 120 // 30, warnings  # the switch to the spool, then at most one per 30 s
        assert any("replay interrupted" in w for w in warnings), warnings
    finally:
        core.stop()
