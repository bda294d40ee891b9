"""One trade has two sides: when both are this account's orders (a self-trade its taker's prevention mode NONE let
happen: the engine's resting order and one placed outside it), myTrades has two rows with the same trade id, one per
order. Both fills are stored (fills are unique per exchange, symbol, trade id and exchange order id, schema 9); the
same fill told twice (the stream and REST) is still stored once."""

from __future__ import annotations

import pytest

from db import BatchWriter, connect, fills_of, find_fills, migrate
from db._models import FillRowV1
from engine.domain import ClientOrderId, ExchangeOrderId, Fill, Side
from tests.db import _records as rec


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_fresh_url"))


def _seller(trade_id: int) -> Fill:
    return rec.fill(trade_id, "web_outside", side=Side.SELL, exchange_order_id=ExchangeOrderId(1001), is_maker=False)


def test_both_sides_of_a_self_trade_are_stored_and_a_repeated_fill_once(db_url: str) -> None:
    db = connect(db_url)
    try:
        writer = BatchWriter(db)
        writer.write([rec.fill(7, "c-1")])  # one row: PostgreSQL's prepared statement
        writer.write([_seller(7)])
        writer.write([rec.fill(8, "c-1"), _seller(8), rec.fill(8, "c-1"), _seller(8)])
        writer.write([rec.fill(7, "c-1"), _seller(7)])
        assert sorted((f.trade_id, f.client_order_id, f.side) for f in find_fills(db)) == [
            (7, "c-1", Side.BUY), (7, "web_outside", Side.SELL), (8, "c-1", Side.BUY), (8, "web_outside", Side.SELL),
        ]  # fmt: skip
        assert [f.trade_id for f in fills_of(db, ClientOrderId("web_outside"))] == [7, 8]
    finally:
        db.close()


@pytest.mark.parametrize("fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_migration_9_keeps_the_stored_fills_and_takes_the_other_side_after(fresh_url: str) -> None:
    db = connect(fresh_url, apply_migrations=False)
    try:
        migrate(db, target=8)
        for fill in (rec.fill(7, "c-1"), rec.fill(9, "c-2")):  # as an engine of schema 8 stored them
            FillRowV1.insert(**fill.model_dump()).execute(db)
        assert migrate(db) >= 9
        BatchWriter(db).write([_seller(7), rec.fill(9, "c-2")])
        assert sorted((f.trade_id, f.client_order_id) for f in find_fills(db)) == [
            (7, "c-1"), (7, "web_outside"), (9, "c-2"),
        ]  # fmt: skip
    finally:
        db.close()
