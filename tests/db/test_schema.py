"""Migrations from empty, exact decimal round-trip, and column types on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import peewee
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from db import (
    LATEST_VERSION,
    MIGRATIONS,
    MODELS,
    BatchWriter,
    OrderRow,
    TradeRow,
    connect,
    current_version,
    decimal_to_text,
    fills_of,
    find_trades,
    get_order,
    migrate,
)
from tests.db import _records as rec

# Binance: prices and quantities with up to 8 decimals; totals and balances well below 10^12; plus the
# longer results of arithmetic (average prices) at up to 18 decimals.
binance_amounts = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("999999999999"), places=8)
derived = st.decimals(min_value=Decimal("0.000000000000000001"), max_value=Decimal("99999999"), places=18)


# Every column of `orders` an engine without migration 5 knows: what such an engine inserts.
_OLD_COLUMNS = (
    "client_order_id, exchange, request_id, pair, side, order_type, time_in_force, role, status, amount, filled, "
    "remaining, quote_filled, fees, created_at, updated_at"
)
_OLD_VALUES = (
    "'binance', 'r', 'BTC/USDT', 'buy', 'limit', 'GTC', 'primary', 'open', '1', '0', '1', '0', '{}', "
    "'2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000'"
)


def _insert_order(db: peewee.Database, cid: str, *, capped: str | None = None) -> None:
    """INSERT as an engine without migration 5 does (no slippage_capped), or with `capped` as its SQL value."""
    columns = _OLD_COLUMNS + ("" if capped is None else ", slippage_capped")
    values = f"{db.param}, {_OLD_VALUES}" + ("" if capped is None else f", {capped}")
    db.execute_sql(f"INSERT INTO orders ({columns}) VALUES ({values})", (cid,))


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_fresh_url"))


@pytest.fixture
def database(db_url: str) -> Iterator[peewee.Database]:
    db = connect(db_url)
    yield db
    db.close()


@pytest.mark.parametrize("fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_every_migration_from_empty(fresh_url: str) -> None:
    db = connect(fresh_url, apply_migrations=False)
    try:
        assert current_version(db) == 0
        assert [m.version for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))
        for migration in MIGRATIONS:
            assert migrate(db, target=migration.version) == migration.version
        # Re-running is a no-op.
        assert migrate(db) == LATEST_VERSION
        versions = [row[0] for row in db.execute_sql("SELECT version FROM schema_version ORDER BY version")]
        assert versions == list(range(1, LATEST_VERSION + 1))
        # The migrated schema matches the current models, column for column.
        for model in MODELS:
            table = model._meta.table_name
            stored = {c.name for c in db.get_columns(table)}
            assert stored == {f.column_name for f in model._meta.sorted_fields}, table
        indexes = {i.name for i in db.get_indexes("trades")}
        assert {"trades_timeframe_rsi", "trades_timeframe_strategy_created_at"} <= indexes
    finally:
        db.close()


@pytest.mark.parametrize("fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_migration_2_keeps_existing_rows(fresh_url: str) -> None:
    db = connect(fresh_url, apply_migrations=False)
    try:
        migrate(db, target=1)
        db.execute_sql(
            "INSERT INTO trades (request_id, pair, side, requested, filled, fees, status, created_at, "
            "remainder, dust, note) "
            "VALUES ('old', 'BTC/USDT', 'buy', '1', '0', '{}', 'open', '2026-01-01 00:00:00.000000', '0', false, '')"
        )
        migrate(db)
        rows = list(TradeRow.select().execute(db))
        assert [(r.request_id, r.rsi, r.indicators) for r in rows] == [("old", None, {})]
    finally:
        db.close()


@pytest.mark.parametrize("fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_migration_5_keeps_orders_and_stores_the_capped_flag(fresh_url: str) -> None:
    db = connect(fresh_url, apply_migrations=False)
    try:
        migrate(db, target=4)
        _insert_order(db, "old")
        migrate(db)
        old = get_order(db, "old")
        assert old is not None and old.slippage_capped is False
        capped = rec.order("c-capped").model_copy(update={"slippage_capped": True})
        BatchWriter(db).write([capped])
        stored = get_order(db, "c-capped")
        assert stored is not None and stored.slippage_capped is True
    finally:
        db.close()


@pytest.mark.parametrize("fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_migration_6_keeps_requests_uncanceled_and_an_older_engine_can_still_insert_them(fresh_url: str) -> None:
    insert = (
        "INSERT INTO requests (request_id, idempotency_key, exchange, pair, payload, reference_price, created_at) "
        "VALUES ({p}, 'k', 'binance', 'BTC/USDT', '{{}}', NULL, '2026-01-01 00:00:00.000000')"
    )
    db = connect(fresh_url, apply_migrations=False)
    try:
        migrate(db, target=5)
        db.execute_sql(insert.format(p=db.param), ("before",))
        migrate(db)
        db.execute_sql(insert.format(p=db.param), ("after",))  # as an engine without migration 6 writes
        rows = db.execute_sql("SELECT request_id, canceled FROM requests ORDER BY request_id").fetchall()
        assert [tuple(r) for r in rows] == [("after", None), ("before", None)]
    finally:
        db.close()


@pytest.mark.parametrize("fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_an_older_engine_can_still_insert_orders_after_migration_5(fresh_url: str) -> None:
    db = connect(fresh_url, apply_migrations=False)
    try:
        migrate(db, target=4)
        _insert_order(db, "before")
        assert migrate(db) == LATEST_VERSION
        _insert_order(db, "after")  # an engine that predates migration 5, writing to the migrated database
        for cid in ("before", "after"):
            raw = db.execute_sql(f"SELECT slippage_capped FROM orders WHERE client_order_id = {db.param}", (cid,))
            assert raw.fetchone()[0] in (0, False)
            stored = get_order(db, cid)
            assert stored is not None and stored.slippage_capped is False
        # Still NOT NULL: the database default fills an omitted column, an explicit NULL stays refused.
        with pytest.raises(peewee.IntegrityError), db.atomic():
            _insert_order(db, "null", capped="NULL")
    finally:
        db.close()


def test_canonical_text() -> None:
    assert decimal_to_text(Decimal("1E-8")) == "0.00000001"
    assert decimal_to_text(Decimal("1.10")) == "1.10"
    assert decimal_to_text(Decimal("1E+3")) == "1000"
    with pytest.raises(ValueError, match="non-finite"):
        decimal_to_text(Decimal("NaN"))


def test_sqlite_keeps_decimals_as_text(sqlite_url: str) -> None:
    db = connect(sqlite_url)
    try:
        BatchWriter(db).write([rec.order(price=Decimal("0.1"))])
        kind, text = db.execute_sql("SELECT typeof(price), price FROM orders").fetchone()
        assert (kind, text) == ("text", "0.1")
        stored = get_order(db, "c-1")
        assert stored is not None
        assert stored.price == Decimal("0.1")
    finally:
        db.close()


def test_exact_round_trip(database: peewee.Database) -> None:
    writer = BatchWriter(database)
    counter = iter(range(1, 10**9))

    @settings(max_examples=60, deadline=None)
    @given(price=binance_amounts, qty=binance_amounts, fee=derived, avg=derived, rsi=derived)
    def check(price: Decimal, qty: Decimal, fee: Decimal, avg: Decimal, rsi: Decimal) -> None:
        n = next(counter)
        cid = f"c{n}"
        order = rec.order(cid, price=price, amount=qty + fee, average_price=avg, fees={"BNB": fee})
        order = rec.progressed(order, qty, order.status, quote_filled=price * qty)
        fill = rec.fill(n, cid, qty=qty, price=price, commission=fee)
        trade = rec.trade(
            f"r{n}", requested=qty + fee, filled=qty, average_price=avg, indicators={"rsi": rsi, "x": -rsi}
        )
        writer.write([order, fill, trade])
        assert get_order(database, cid) == order
        assert fills_of(database, cid) == [fill]
        stored = find_trades(database, strategy="rsi_dip", indicators={"rsi": (rsi, rsi + Decimal("1E-18"))})
        assert trade in stored
        assert str(get_order(database, cid).price) == str(price)  # type: ignore[union-attr]

    check()


@pytest.mark.parametrize("fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_migration_12_stores_an_amend_and_finds_the_order_by_the_exchanges_new_id(fresh_url: str) -> None:
    from datetime import timedelta

    db = connect(fresh_url, apply_migrations=False)
    try:
        migrate(db, target=11)
        _insert_order(db, "old")
        assert migrate(db) == LATEST_VERSION
        old = get_order(db, "old")
        assert old is not None and (old.exchange_client_order_id, old.amended_amount) == (None, None)
        _insert_order(db, "after")  # an engine that predates migration 12 still writes
        mine = rec.order("c-amended")
        BatchWriter(db).write([mine])
        later = mine.updated_at + timedelta(seconds=1)
        amended = mine.model_copy(update={"exchange_client_order_id": "web_edit_1", "amended_amount": Decimal("0.2"),
                                          "updated_at": later})  # fmt: skip
        BatchWriter(db).write([amended])
        for key in ("c-amended", "web_edit_1"):
            stored = get_order(db, key)
            assert stored is not None and stored.client_order_id == "c-amended", key
            assert (stored.exchange_client_order_id, stored.amended_amount) == ("web_edit_1", Decimal("0.2"))
        # A later version that does not carry the amend (a replayed intent) leaves it stored.
        BatchWriter(db).write([mine.model_copy(update={"updated_at": later + timedelta(seconds=1)})])
        stored = get_order(db, "web_edit_1")
        assert stored is not None and stored.amended_amount == Decimal("0.2")
        assert get_order(db, "nowhere") is None
    finally:
        db.close()


def test_a_pairs_orders_newest_first_are_read_through_an_index_not_sorted(sqlite_url: str) -> None:
    # The listing the control API, the CLI and `Engine.orders(pair=…)` run on the persistence actor's connection:
    # SQLite read every order of the pair and sorted them (a temporary B-tree), 0.5 s at 120,000 orders, while
    # every new order's write-ahead waited behind it.
    db = connect(sqlite_url)
    try:
        migrate(db)
        query = (
            OrderRow.select()
            .where(OrderRow.pair == "BTC/USDT")
            .order_by(OrderRow.created_at.desc(), OrderRow.id.desc())
            .limit(100)
        )
        sql, params = query.sql()
        plan = " ".join(str(row) for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
        assert "orders_pair_created_at_id" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        db.close()


def test_a_pairs_open_orders_are_read_through_the_status_index(sqlite_url: str) -> None:
    # With (pair, created_at, id) there, SQLite (no statistics) walked it to skip the sort: the pair's whole history
    # read for its few open orders (0.7 ms → 37 ms at 120,000 orders), in `open_orders` and the recovery's read.
    from db._repository import created_order

    db = connect(sqlite_url)
    try:
        migrate(db)
        query = (
            OrderRow.select()
            .where(OrderRow.pair == "BTC/USDT", OrderRow.status.in_(["open", "partially_filled"]))
            .order_by(created_order(db), OrderRow.id)
        )
        sql, params = query.sql()
        plan = " ".join(str(row) for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
        assert "orders_pair_status_created_at" in plan, plan
    finally:
        db.close()
