"""An integer too large for the database (>= 2**63) blames its record, on both backends: it is isolated and stored
as an error row, never taken for an outage (which spooled it and replayed it forever, degraded for good)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.persistence import Durability, Health, HealthReport, PersistenceCore, PersistenceSettings, Spool
from db import BatchWriter, Record, connect, fills_of, find_errors, get_order, is_bad_record, is_transient
from tests.db import _records as rec

# The smallest value neither SQLite's INTEGER nor PostgreSQL's BIGINT holds. model_copy skips validation, as a
# record read back from the spool or built from an exchange payload might carry anything.
_TOO_BIG = 2**63

_BIG_RECORDS = {
    "trade_id": lambda: rec.fill(1).model_copy(update={"trade_id": _TOO_BIG}),
    "exchange_order_id": lambda: rec.order("big").model_copy(update={"exchange_order_id": _TOO_BIG}),
    "exchange_code": lambda: rec.error(1).model_copy(update={"exchange_code": _TOO_BIG}),
}


@pytest.mark.parametrize("field", sorted(_BIG_RECORDS))
def test_an_integer_past_int64_is_a_bad_record(db_url: str, field: str) -> None:
    db = connect(db_url)
    try:
        with pytest.raises(Exception) as raised:  # noqa: PT011 - which class depends on the backend; classified below
            BatchWriter(db).write([_BIG_RECORDS[field]()])
        assert is_bad_record(raised.value), repr(raised.value)
        assert not is_transient(raised.value)
        BatchWriter(db).write([rec.order("after")])  # the connection is still usable
        assert get_order(db, "after") is not None
    finally:
        db.close()


def test_sqlite_raises_overflow_error_for_it(sqlite_url: str) -> None:
    # The driver's own error, unwrapped (the writer binds on sqlite3 directly): the one BAD_RECORD_ERRORS lacked.
    db = connect(sqlite_url)
    try:
        with pytest.raises(OverflowError):
            BatchWriter(db).write([_BIG_RECORDS["trade_id"]()])
    finally:
        db.close()


def _core(url: str, tmp_path: Path, reports: list[HealthReport]) -> PersistenceCore:
    settings = PersistenceSettings(batch_size=500, max_retry_ticks=2)
    core = PersistenceCore(url, tmp_path / "spool.jsonl", listener=reports.append, settings=settings)
    core.start()
    return core


def test_persistence_isolates_it_and_stays_ok(db_url: str, tmp_path: Path) -> None:
    reports: list[HealthReport] = []
    core = _core(db_url, tmp_path, reports)
    big: list[Any] = [make() for make in _BIG_RECORDS.values()]
    batch: list[Record] = [rec.order("good-before"), *big, rec.fill(2), rec.order("good-after")]
    core.accept_many(batch)
    assert core.flush() is Durability.DATABASE
    assert not core.degraded
    assert core.rejected == len(big)
    core.tick()  # the error rows the isolation queued
    core.stop()
    assert [r.health for r in reports] == [Health.OK]
    assert list(Spool(tmp_path / "spool.jsonl").read()) == []

    db = connect(db_url)
    try:
        assert get_order(db, "good-before") is not None
        assert get_order(db, "good-after") is not None
        assert [f.trade_id for f in fills_of(db, "c-1")] == [2]
        persist_errors = find_errors(db, operation="persist")
        assert sorted(e.message.split(" ")[0] for e in persist_errors) == ["ErrorRecord", "Fill", "Order"]
    finally:
        db.close()

    # A restart finds nothing to replay and starts healthy.
    again: list[HealthReport] = []
    core = _core(db_url, tmp_path, again)
    assert not core.degraded
    core.stop()
    assert [r.health for r in again] == [Health.OK]


def test_the_write_ahead_of_such_a_record_is_refused_not_spooled(sqlite_url: str, tmp_path: Path) -> None:
    core = _core(sqlite_url, tmp_path, [])
    big = _BIG_RECORDS["exchange_order_id"]()
    assert core.commit_now([big]) is Durability.DATABASE
    assert core.rejected_now == [big]  # its caller fails the write-ahead: the order must not leave
    assert not core.degraded
    core.stop()
