"""PersistenceCore without threads: batching, flush, outage spooling and replay, health, bad records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest

import actors.persistence._core as core_module
from actors.persistence import (
    Durability,
    Health,
    HealthReport,
    NotDurableError,
    PersistenceCore,
    PersistenceSettings,
    Spool,
)
from db import (
    BatchWriter,
    DatabaseUnavailableError,
    ErrorRow,
    FillRow,
    OrderRow,
    connect,
    count,
    find_errors,
    find_fills,
    get_order,
)
from tests.db import _records as rec


class Outage:
    """Switchable fault at the driver seam: writes and connects fail with the errors a dead server gives."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        self.connects = 0
        real_open = core_module.open_connection
        real_write = core_module.BatchWriter.write

        def open_connection(db: peewee.Database, spec: Any) -> None:
            self.connects += 1
            if self.down:
                raise DatabaseUnavailableError("cannot reach database (test outage)")
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
def reader(sqlite_url: str) -> Iterator[peewee.Database]:
    db = connect(sqlite_url)
    yield db
    db.close()


def _core(url: str, tmp_path: Path, reports: list[HealthReport], **settings: Any) -> PersistenceCore:
    opts = {"batch_size": 3, "max_retry_ticks": 4, **settings}
    core = PersistenceCore(url, tmp_path / "spool.jsonl", listener=reports.append, settings=PersistenceSettings(**opts))
    core.start()
    return core


def test_batches_by_size_and_tick(sqlite_url: str, tmp_path: Path, reader: peewee.Database) -> None:
    reports: list[HealthReport] = []
    core = _core(sqlite_url, tmp_path, reports)
    core.accept(rec.fill(1))
    core.accept(rec.fill(2))
    assert count(reader, FillRow) == 0  # below the batch size: still pending
    core.accept(rec.fill(3))
    assert count(reader, FillRow) == 3  # size reached: committed
    core.accept(rec.fill(4))
    core.tick()
    assert count(reader, FillRow) == 4  # interval boundary
    core.accept(rec.order())
    assert core.flush() is Durability.DATABASE
    assert count(reader, OrderRow) == 1
    assert [r.health for r in reports] == [Health.OK]
    core.stop()


def test_stop_commits_pending(sqlite_url: str, tmp_path: Path, reader: peewee.Database) -> None:
    core = _core(sqlite_url, tmp_path, [])
    core.accept(rec.fill(1))
    core.stop()
    assert count(reader, FillRow) == 1


def test_outage_spools_in_order_and_replays_once(
    sqlite_url: str, tmp_path: Path, reader: peewee.Database, outage: Outage
) -> None:
    reports: list[HealthReport] = []
    core = _core(sqlite_url, tmp_path, reports)
    core.accept_many([rec.fill(1), rec.fill(2), rec.fill(3)])  # committed
    outage.down = True
    o1 = rec.order()
    o2 = rec.progressed(o1, rec.Decimal("0.2"), rec.OrderStatus.PARTIALLY_FILLED)
    core.accept_many([rec.fill(4), o1, rec.fill(5)])  # this batch fails and is spooled
    core.accept_many([o2, rec.fill(3), rec.fill(6)])  # degraded: straight to the spool
    assert core.flush() is Durability.SPOOL
    assert [r.health for r in reports] == [Health.OK, Health.DEGRADED]
    assert reports[-1].accepting_orders is True  # degraded but below the spool limit
    assert len(list(Spool(tmp_path / "spool.jsonl").read())) == 6
    with pytest.raises(DatabaseUnavailableError):
        core.query(count, FillRow)
    core.tick()  # retry while still down
    assert core.degraded
    outage.down = False
    for _ in range(8):  # back-off: at most max_retry_ticks ticks until the next attempt
        core.tick()
        if not core.degraded:
            break
    assert not core.degraded
    assert reports[-1].health is Health.OK
    assert [f.trade_id for f in core.query(find_fills)] == [1, 2, 3, 4, 5, 6]
    assert core.query(get_order, "c-1") == o2
    assert (tmp_path / "spool.jsonl").stat().st_size == 0
    core.stop()


def test_reconnect_backs_off_in_ticks(sqlite_url: str, tmp_path: Path, outage: Outage) -> None:
    core = _core(sqlite_url, tmp_path, [], max_retry_ticks=4)
    outage.down = True
    core.accept_many([rec.fill(1), rec.fill(2), rec.fill(3)])
    attempts = []
    for _ in range(16):
        before = outage.connects
        core.tick()
        attempts.append(outage.connects - before)
    # Attempts on ticks 1, 3, 7, 11, 15 (back-off 1, 2, 4, 4, ...).
    assert [i + 1 for i, a in enumerate(attempts) if a] == [1, 3, 7, 11, 15]
    core.stop()


def test_spool_limit_stops_new_orders(sqlite_url: str, tmp_path: Path, outage: Outage) -> None:
    reports: list[HealthReport] = []
    core = _core(sqlite_url, tmp_path, reports, spool_limit_bytes=2000)
    outage.down = True
    for n in range(1, 10):
        core.accept(rec.fill(n))
    assert [r.health for r in reports] == [Health.OK, Health.DEGRADED, Health.SPOOL_FULL]
    assert reports[-1].accepting_orders is False
    assert core.report().spooled == 9
    assert core.flush() is Durability.SPOOL  # still durable: fills of live orders are never refused
    outage.down = False
    for _ in range(8):
        core.tick()
    assert reports[-1] == HealthReport(Health.OK, True, reports[-1].reason, 0)
    assert core.query(count, FillRow) == 9
    core.stop()


def test_unwritable_spool_holds_in_memory_then_not_durable(
    sqlite_url: str, tmp_path: Path, outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: list[HealthReport] = []
    core = _core(sqlite_url, tmp_path, reports, memory_limit=4)

    def disk_full(self: Spool, records: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Spool, "append", disk_full)
    outage.down = True
    for n in range(1, 7):
        core.accept(rec.fill(n))
    assert reports[-1].health is Health.SPOOL_FULL
    assert core.lost == 2
    with pytest.raises(NotDurableError, match="only in memory"):
        core.flush()
    monkeypatch.undo()  # disk and database come back
    for _ in range(8):
        core.tick()
    assert core.query(count, FillRow) == 4
    core.stop()


def test_bad_record_is_isolated_and_reported(sqlite_url: str, tmp_path: Path, reader: peewee.Database) -> None:
    core = _core(sqlite_url, tmp_path, [], batch_size=10)
    core.accept(rec.order("a", exchange_order_id=9))
    core.flush()
    # "b" claims the exchange order id of "a": the database refuses it; the rest of the batch must land.
    core.accept_many([rec.fill(1), rec.order("b", exchange_order_id=9), rec.fill(2)])
    assert core.flush() is Durability.DATABASE
    assert core.flush() is Durability.DATABASE  # commits the "persist" error record
    assert count(reader, FillRow) == 2
    assert count(reader, OrderRow) == 1
    assert core.rejected == 1
    [err] = find_errors(reader, operation="persist")
    assert "Order rejected" in err.message
    assert '"client_order_id":"b"' in err.context["record"]
    assert count(reader, ErrorRow) == 1
    core.stop()


def test_a_record_the_database_refuses_is_alerted_and_counted_at_stop(sqlite_url: str, tmp_path: Path) -> None:
    # A refused order or fill leaves the database behind what the engine knows; health stays ok (the database is
    # up), so only an ERROR line said so, and the stop line read "lost=0" as if all was stored.
    from loguru import logger

    lines: list[Any] = []
    sink = logger.add(lambda m: lines.append(m.record), level="ERROR")
    try:
        core = _core(sqlite_url, tmp_path, [], batch_size=10)
        core.accept(rec.order("a", exchange_order_id=9))
        core.flush()
        core.accept_many([rec.order("b", exchange_order_id=9), rec.order("c", exchange_order_id=9)])
        core.flush()
        core.stop()
    finally:
        logger.remove(sink)
    [alert] = [r for r in lines if r["extra"].get("alert") == "record_rejected"]  # one per batch, not per record
    assert alert["level"].name == "CRITICAL" and "refused 2 record(s), the first Order" in alert["message"]
    assert any("persistence stopped" in r["message"] and "rejected=2" in r["message"] for r in lines), lines


def test_start_replays_spool_skipping_torn_and_corrupt_lines(
    sqlite_url: str, tmp_path: Path, reader: peewee.Database
) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([rec.fill(1), rec.fill(2)])
    spool.close()
    with (tmp_path / "spool.jsonl").open("ab") as handle:
        handle.write(b'{"k": "fill", "d": {"nonsense": 1}}\n')
        handle.write(b'{"k": "fill", "d": {"symbol": "BTCUSDT"')  # torn by a crash mid-write
    reports: list[HealthReport] = []
    core = _core(sqlite_url, tmp_path, reports)
    assert count(reader, FillRow) == 2
    assert (tmp_path / "spool.jsonl").stat().st_size == 0
    assert [r.health for r in reports] == [Health.OK]
    core.stop()


def test_start_while_unreachable_is_degraded(tmp_path: Path) -> None:
    reports: list[HealthReport] = []
    url = f"sqlite:///{tmp_path}"  # a directory: SQLite cannot open it
    core = _core(url, tmp_path / "s", reports)
    core.accept(rec.fill(1))
    assert core.flush() is Durability.SPOOL
    assert [r.health for r in reports] == [Health.DEGRADED]
    core.stop()


def test_torn_spool_then_more_spooling_loses_no_new_record(
    sqlite_url: str, tmp_path: Path, reader: peewee.Database, outage: Outage
) -> None:
    spool_path = tmp_path / "spool.jsonl"
    spool = Spool(spool_path)
    spool.append([rec.fill(1)])
    spool.close()
    with spool_path.open("ab") as handle:
        handle.write(b'{"k": "fill", "d": {"symbol"')  # crash mid-write
    outage.down = True
    core = _core(sqlite_url, tmp_path, [])
    core.accept_many([rec.fill(2), rec.fill(3)])  # appended after the torn line
    assert core.flush() is Durability.SPOOL
    outage.down = False
    for _ in range(8):
        core.tick()
    assert [f.trade_id for f in find_fills(reader)] == [1, 2, 3]
    core.stop()


def test_a_refused_batch_stores_nothing_then_the_good_records_land(db_url: str, tmp_path: Path) -> None:
    # On PostgreSQL the whole batch is one multi-statement query (one round trip): it must still be all
    # or nothing, and the connection must stay usable for the record-by-record retry that follows.
    core = _core(db_url, tmp_path, [], batch_size=10)
    core.accept(rec.order("a", exchange_order_id=9))
    core.flush()
    core.accept_many([rec.fill(1), rec.order("c"), rec.order("b", exchange_order_id=9), rec.fill(2)])
    assert core.flush() is Durability.DATABASE
    assert core.flush() is Durability.DATABASE  # the "persist" error record
    assert core.query(count, FillRow) == 2
    assert core.query(count, OrderRow) == 2  # "a" and "c"; "b" refused
    assert core.rejected == 1
    assert not core.degraded
    core.stop()


def test_writer_batch_is_all_or_nothing_and_the_connection_stays_usable(db_url: str) -> None:
    db = connect(db_url)
    writer = BatchWriter(db)
    writer.write([rec.order("a", exchange_order_id=9)])
    with pytest.raises(Exception, match=r"exchange_order_id|UNIQUE"):
        writer.write([rec.fill(1), rec.order("c"), rec.order("b", exchange_order_id=9)])
    assert count(db, FillRow) == 0 and count(db, OrderRow) == 1
    writer.write([rec.fill(2)])
    assert count(db, FillRow) == 1
    db.close()


def _spooling_one_fill(url: str, tmp_path: Path, outage: Outage, reports: list[HealthReport]) -> PersistenceCore:
    """A core whose database went down with one fill told: the fill is in the spool."""
    core = _core(url, tmp_path, reports)
    outage.down = True
    core.accept(rec.fill(1))
    assert core.flush() is Durability.SPOOL
    return core


def _back_with_the_fill(core: PersistenceCore, reports: list[HealthReport], ticks: int) -> None:
    """Tick until the database is back: health ok, the spooled fill in the database; then stop."""
    for _ in range(ticks):
        core.tick()
    assert reports[-1].health is Health.OK
    assert core.query(count, FillRow) == 1
    core.stop()


def test_a_spool_fsync_failure_stops_new_orders_and_the_core_lives_on(
    sqlite_url: str, tmp_path: Path, outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Database down, records spooled; then the disk refuses fsync (EIO). The tick must not raise (the actor would
    # die and every later fill be lost): new orders stop, write-aheads are not durable, the spool is kept.
    reports: list[HealthReport] = []
    core = _spooling_one_fill(sqlite_url, tmp_path, outage, reports)
    assert reports[-1].health is Health.DEGRADED

    def eio(self: Spool) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(Spool, "sync", eio)
    core.tick()  # no exception
    assert reports[-1].health is Health.SPOOL_FULL and reports[-1].accepting_orders is False
    with pytest.raises(NotDurableError, match="fsync"):
        core.flush()
    monkeypatch.setattr(Spool, "sync", lambda self: None)  # the disk recovers
    core.tick()
    assert reports[-1].health is Health.DEGRADED and reports[-1].accepting_orders is True
    outage.down = False
    _back_with_the_fill(core, reports, ticks=8)


def test_a_database_refused_on_reconnect_mid_run_keeps_the_core_on_the_spool(
    sqlite_url: str, tmp_path: Path, outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db import DatabaseSchemaError

    reports: list[HealthReport] = []
    core = _spooling_one_fill(sqlite_url, tmp_path, outage, reports)
    outage.down = False

    def newer_schema(db: peewee.Database) -> None:
        raise DatabaseSchemaError("the database schema is version 99, newer than this engine (test)")

    monkeypatch.setattr(core_module, "migrate", newer_schema)
    for _ in range(8):
        core.tick()  # refused each time: no exception, still spooling
    assert core.degraded and reports[-1].health is Health.DEGRADED
    assert core.flush() is Durability.SPOOL
    monkeypatch.undo()
    outage.down = False
    _back_with_the_fill(core, reports, ticks=16)


def test_a_write_ahead_carrying_a_finished_requests_trade_takes_the_pending_fills_with_it(
    sqlite_url: str, tmp_path: Path, reader: peewee.Database
) -> None:
    # A queued request's write-ahead carries its predecessor's last fill, closing order row and trade. The earlier
    # fill, still pending, was left for the tick: killed before it, the trade said filled and the fill was lost for
    # good (recovery does not look at a finished request again).
    core = _core(sqlite_url, tmp_path, [], batch_size=100)
    core.accept_many([rec.fill(501), rec.order()])  # the first fill: pending
    next_order = rec.order("c-2")
    companions = [rec.fill(502), rec.order(), rec.trade("r-1"), next_order]
    core.supersede(companions)
    assert core.commit_now(companions) is Durability.DATABASE
    # kill -9 here: no tick, no stop
    assert sorted(int(f.trade_id) for f in find_fills(reader)) == [501, 502]


def test_a_write_ahead_without_a_trade_commits_only_its_own_rows(
    sqlite_url: str, tmp_path: Path, reader: peewee.Database
) -> None:
    core = _core(sqlite_url, tmp_path, [], batch_size=100)
    core.accept(rec.fill(501))
    assert core.commit_now([rec.order("c-2")]) is Durability.DATABASE
    assert count(reader, FillRow) == 0 and count(reader, OrderRow) == 1  # the fill waits for its tick
    core.tick()
    assert count(reader, FillRow) == 1
    core.stop()
