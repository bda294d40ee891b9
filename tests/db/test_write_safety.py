"""Writes that must not be lost or turned back: unencodable records, a refused write-ahead, clock steps, and
rows of one order reaching the database out of order."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from actors.persistence import PersistenceCore, PersistenceSettings, start_persistence
from actors.persistence._spool import Spool
from db import BatchWriter, ErrorRow, FillRow, connect, count, get_order, load_recovery, order_supersedes
from engine.domain import ErrorRecord, OrderStatus, StrategyContext, Trade, TradeStatus
from tests.db import _records as rec

UNENCODABLE = "note \x00 and \ud800"  # NUL: PostgreSQL refuses it; a lone surrogate: no UTF-8 encoder takes it


def _bad_trade(rid: str = "r-bad") -> Trade:
    # Built past validation, as `Trade.trusted` does on the hot path: the database is the last line.
    return Trade.model_construct(**{**rec.trade(rid).model_dump(), "note": UNENCODABLE})


def test_a_close_with_the_same_fills_wins_over_an_earlier_timestamp(db_url: str) -> None:
    db = connect(db_url)
    writer = BatchWriter(db)
    live = rec.progressed(rec.order("c-1"), Decimal("0.2"), OrderStatus.PARTIALLY_FILLED, seconds=10)
    canceled = rec.progressed(rec.order("c-1"), Decimal("0.2"), OrderStatus.CANCELED, seconds=8)  # clock stepped back
    reopened = rec.progressed(rec.order("c-1"), Decimal("0.2"), OrderStatus.OPEN, seconds=20)
    assert order_supersedes(canceled, live) and not order_supersedes(reopened, canceled)
    writer.write([live])
    writer.write([canceled])
    writer.write([reopened])  # a late replay of an open state never reopens it
    stored = get_order(db, "c-1")
    assert stored is not None and stored.status is OrderStatus.CANCELED
    assert [o.client_order_id for o in load_recovery(db).orders] == []
    db.close()


def test_a_record_no_database_can_take_is_refused_alone(db_url: str, tmp_path: Path) -> None:
    core = PersistenceCore(db_url, tmp_path / "spool.jsonl", settings=PersistenceSettings(batch_size=100))
    core.start()
    core.accept_many([rec.fill(1), _bad_trade(), rec.fill(2)])
    core.tick()
    assert not core.degraded and core.rejected == 1
    core.accept(rec.fill(3))
    core.tick()
    core.stop()
    reader = connect(db_url)
    assert count(reader, FillRow) == 3
    assert count(reader, ErrorRow) == 1  # the refusal, stored with what the record was
    reader.close()


def test_the_spool_leaves_out_only_what_cannot_be_encoded(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([rec.fill(1), _bad_trade(), rec.fill(2)])
    spool.sync()
    assert [type(r).__name__ for r in spool.read()] == ["Fill", "Fill"]


def test_a_write_ahead_whose_own_record_is_refused_is_not_durable(db_url: str, tmp_path: Path) -> None:
    handle = start_persistence(db_url, tmp_path / "spool.jsonl")
    answered = threading.Event()
    outcome: list[object] = []

    def durable() -> None:
        outcome.append("durable")
        answered.set()

    def failed(exc: BaseException) -> None:
        outcome.append(exc)
        answered.set()

    try:
        handle.write_ahead_then(rec.order("c-wa"), durable, failed, companions=[_bad_trade()])
        assert answered.wait(30)
    finally:
        handle.stop()
    [error] = outcome
    assert isinstance(error, Exception) and "refused" in str(error)


def test_an_earlier_state_still_pending_never_lands_after_a_newer_one(db_url: str, tmp_path: Path) -> None:
    core = PersistenceCore(db_url, tmp_path / "spool.jsonl", settings=PersistenceSettings(batch_size=100))
    core.start()
    open_ = rec.progressed(rec.order("c-2"), Decimal(0), OrderStatus.OPEN, seconds=5)
    canceling = rec.progressed(rec.order("c-2"), Decimal(0), OrderStatus.PENDING_CANCEL, seconds=5)  # same ms
    core.accept(open_)  # told first, waits for the tick
    core.supersede([canceling, rec.order("c-3")])  # a later message's write-ahead carries the newer state
    core.commit_now([canceling, rec.order("c-3")])
    core.tick()
    core.stop()
    reader = connect(db_url)
    stored = get_order(reader, "c-2")
    assert stored is not None and stored.status is OrderStatus.PENDING_CANCEL
    reader.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [("strategy", "s" * 65), ("timeframe", "t" * 17), ("strategy", "nul\x00"), ("timeframe", "\ud800")],
)
def test_caller_names_the_database_cannot_store_are_refused_at_once(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        StrategyContext(**{field: value})


def test_exchange_text_is_kept_with_what_cannot_be_stored_replaced() -> None:
    error = ErrorRecord(operation="create_order", message=UNENCODABLE, context={"msg\x00": "\ud800"}, time=rec.T0)
    assert error.message == "note \ufffd and \ufffd"
    assert error.context == {"msg\ufffd": "\ufffd"}
    error.model_dump_json()  # encodable now


def test_recovery_brings_the_trade_of_a_summed_up_request_whose_order_is_still_open(db_url: str) -> None:
    db = connect(db_url)
    writer = BatchWriter(db)
    summed = rec.trade("r-c-9", status=TradeStatus.PARTIAL, filled=Decimal("0.2"))
    writer.write([rec.progressed(rec.order("c-9"), Decimal("0.2"), OrderStatus.PARTIALLY_FILLED), summed])
    writer.write([rec.order("c-10"), rec.trade("r-other", status=TradeStatus.FILLED)])  # an open order's own
    state = load_recovery(db)
    db.close()
    assert sorted(o.client_order_id for o in state.orders) == ["c-10", "c-9"]
    assert list(state.trades) == ["r-c-9"] and state.trades["r-c-9"].filled == Decimal("0.2")
