"""The write-ahead batch on the hot path: one row per table through `execute`, enums bound as text, the
forward-only upsert and the idempotent replay unchanged; migration 4 leaves `requests` one index."""

from __future__ import annotations

from decimal import Decimal

import pytest

from db import BatchWriter, children_of, connect, get_order, get_trade, is_bad_record, request_of
from engine.domain import ExchangeOrderId, OrderStatus, RequestRecord, TradeStatus
from tests.db import _records as rec


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_fresh_url"))


_request = rec.request


@pytest.mark.parametrize("fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_requests_keeps_only_its_natural_key_index(fresh_url: str) -> None:
    db = connect(fresh_url)
    try:
        indexes = {i.name: i.unique for i in db.get_indexes("requests")}
        assert {name: unique for name, unique in indexes.items() if not name.endswith("_pkey")} == {
            "requests_request_id": True
        }
    finally:
        db.close()


@pytest.mark.parametrize("fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_orders_nullable_key_indexes_are_partial_and_still_unique(fresh_url: str) -> None:
    db = connect(fresh_url)
    try:
        if fresh_url.startswith("sqlite"):
            sql = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders'"
        else:
            sql = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'orders'"
        definitions = dict(db.execute_sql(sql).fetchall())
        for name in ("orders_parent_client_order_id", "orders_exchange_pair_exchange_order_id"):
            assert "IS NOT NULL" in definitions[name], definitions[name]
        writer = BatchWriter(db)
        # Intents without an exchange id never collide; a second order with a taken exchange id does.
        writer.write([rec.order("c-1"), rec.order("c-2")])
        writer.write([rec.order("c-1", exchange_order_id=ExchangeOrderId(5))])
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the driver's own IntegrityError class
            writer.write([rec.order("c-3", exchange_order_id=ExchangeOrderId(5))])
        assert is_bad_record(caught.value)
        assert get_order(db, "c-3") is None
        assert [o.client_order_id for o in children_of(db, "c-1")] == []
        writer.write([rec.order("c-4", parent_client_order_id="c-1", role="fallback")])
        assert [o.client_order_id for o in children_of(db, "c-1")] == ["c-4"]
    finally:
        db.close()


def test_orders_of_two_pairs_may_share_an_exchange_order_id(db_url: str) -> None:
    # Binance numbers orders per symbol (ccxt #26092): a unique (exchange, exchange_order_id) refused the second
    # pair's rows, its order stayed pending_submit for good, and a fallback whose write-ahead carried that
    # primary's row as a companion never left.
    db = connect(db_url)
    try:
        writer = BatchWriter(db)
        writer.write([rec.order("eth-1", pair="ETH/USDT", exchange_order_id=ExchangeOrderId(555))])
        writer.write([rec.order("btc-1", pair="BTC/USDT", exchange_order_id=ExchangeOrderId(555))])
        stored = get_order(db, "btc-1")
        assert stored is not None and stored.exchange_order_id == 555
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the driver's own IntegrityError class
            writer.write([rec.order("btc-2", pair="BTC/USDT", exchange_order_id=ExchangeOrderId(555))])
        assert is_bad_record(caught.value)  # within one pair the id is still unique
    finally:
        db.close()


def test_write_ahead_batch_round_trip_and_replay(db_url: str) -> None:
    db = connect(db_url)
    try:
        writer = BatchWriter(db)
        first = rec.order("c-1", request_id="r-1", amount=Decimal("1"))
        writer.write([_request("r-1"), first])
        done = rec.progressed(first, Decimal("1"), OrderStatus.FILLED, exchange_order_id=ExchangeOrderId(77))
        trade = rec.trade("r-1", filled=Decimal("1"), status=TradeStatus.FILLED)
        second = rec.order("c-2", request_id="r-2", amount=Decimal("1"))
        # The next order's write-ahead commits the previous order's follow-ups with it, one row per table.
        writer.write([done, trade, rec.fill(1, "c-1", qty=Decimal("1")), _request("r-2"), second])
        assert get_order(db, "c-1") == done
        assert get_order(db, "c-2") == second
        assert get_trade(db, "r-1") == trade
        stored = request_of(db, "r-2")
        assert stored is not None
        assert stored.request.idempotency_key == "k-r-2"
        status = db.execute_sql("SELECT status FROM orders WHERE client_order_id = 'c-1'").fetchone()[0]
        assert status == "filled"
        # A replayed intent (e.g. from the spool) neither lowers `filled` nor erases the exchange id.
        writer.write([_request("r-1"), first])
        assert get_order(db, "c-1") == done
        # A second writer on the same session (PostgreSQL: the prepared statements exist already).
        BatchWriter(db).write([_request("r-2"), second])
        assert get_order(db, "c-2") == second
    finally:
        db.close()


def _canceled(rid: str, why: str = "canceled by the caller") -> RequestRecord:
    return _request(rid).model_copy(update={"canceled": why})


def test_a_requests_cancel_is_stored_once_and_never_cleared(db_url: str) -> None:
    db = connect(db_url)
    try:
        writer = BatchWriter(db)
        writer.write([_request("r-1")])
        first = request_of(db, "r-1")
        assert first is not None and first.canceled is None
        writer.write([_canceled("r-1")])  # one row: PostgreSQL's prepared statement
        stored = request_of(db, "r-1")
        assert stored is not None and stored.canceled == "canceled by the caller"
        assert stored.request == first.request and stored.reference_price == first.reference_price
        # A replayed intent (the spool, a restated book) does not clear it, nor does a second cancel replace it.
        writer.write([_request("r-1")])
        writer.write([_canceled("r-1", "the shutdown")])
        again = request_of(db, "r-1")
        assert again is not None and again.canceled == "canceled by the caller"
        # Several rows (the multi-row statement), the cancel told before or after the request in one batch, and a
        # cancel whose request row was never written (replayed from the spool): the request is stored with it.
        writer.write([_canceled("r-2"), _request("r-2"), _request("r-3"), _request("r-4"), _canceled("r-4")])
        writer.write([_canceled("r-5")])
        canceled = {rid: getattr(request_of(db, rid), "canceled", "missing") for rid in ("r-2", "r-3", "r-4", "r-5")}
        assert canceled == {"r-2": "canceled by the caller", "r-3": None, "r-4": "canceled by the caller",
                            "r-5": "canceled by the caller"}  # fmt: skip
    finally:
        db.close()
