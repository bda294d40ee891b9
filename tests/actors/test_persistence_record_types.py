"""Every kind of record the database writer takes is stored when told to the persistence actor by itself."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from actors.persistence import RECORD_TYPES, Durability, start_persistence
from db import ErrorRow, FillRow, OrderRow, Record, RequestRow, SnapshotRow, TradeRow, connect, count, request_of
from tests.db import _records as rec

_request = rec.request


def test_the_actor_takes_every_kind_of_record_as_a_message() -> None:
    assert set(RECORD_TYPES) == set(get_args(Record))


def test_save_stores_each_kind_of_record(sqlite_url: str, tmp_path: Path) -> None:
    request = _request("r-c-1")
    records = [rec.order(), rec.fill(1), rec.trade("r-c-1"), rec.error(1), rec.snapshot("r-c-1"), request]
    assert {type(r) for r in records} == set(get_args(Record))
    handle = start_persistence(sqlite_url, tmp_path / "spool.jsonl")
    for record in records:
        handle.save(record)  # one tell each: the record itself is the message
    assert handle.flush().get(timeout=30) is Durability.DATABASE
    handle.stop()
    db = connect(sqlite_url)
    try:
        rows = {model.__name__: count(db, model) for model in (OrderRow, FillRow, TradeRow, ErrorRow, SnapshotRow)}
        assert rows == dict.fromkeys(rows, 1)
        assert count(db, RequestRow) == 1
        assert request_of(db, "r-c-1") == request
    finally:
        db.close()
