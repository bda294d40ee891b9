"""peewee tables. Rows carry no logic; `db._repository` maps them to and from domain types.

Models are deliberately not bound to a database: every query is executed against the database object
passed in (`query.execute(db)`), so several databases can live in one process (tests, tools) without
rebinding model classes across threads.

Natural unique keys make every write idempotent:
orders.client_order_id, orders(exchange, pair, exchange_order_id) (migration 7: Binance numbers orders per
symbol), fills(exchange, symbol, trade_id, exchange_order_id) (migration 9: a self-trade's two sides share a trade id),
trades.request_id, errors.key and indicator_snapshots.key (a content digest).
"""

from __future__ import annotations

import peewee

from db._fields import ExactDecimalField, JsonMapField, UtcDateTimeField


class BaseRow(peewee.Model):
    """Common base: unbound, explicit table names."""

    class Meta:
        legacy_table_names = False


class SchemaVersionRow(BaseRow):
    """One row per applied migration."""

    version = peewee.IntegerField(primary_key=True)
    description = peewee.TextField()
    applied_at = UtcDateTimeField()

    class Meta:
        table_name = "schema_version"


class OrderRowV1(BaseRow):
    """orders as created by migration 1 (frozen: later columns arrive through migrations).

    Migration 4 made the indexes on `parent_client_order_id` and `(exchange, exchange_order_id)` partial
    (`WHERE ... IS NOT NULL`); peewee's declarations below are what migration 1 created.
    """

    id = peewee.BigAutoField()
    client_order_id = peewee.CharField(max_length=64, unique=True)
    exchange = peewee.CharField(max_length=32)
    exchange_order_id = peewee.BigIntegerField(null=True)
    request_id = peewee.CharField(max_length=64, index=True)
    pair = peewee.CharField(max_length=32)
    side = peewee.CharField(max_length=4)
    order_type = peewee.CharField(max_length=16)
    time_in_force = peewee.CharField(max_length=3)
    role = peewee.CharField(max_length=16)
    parent_client_order_id = peewee.CharField(max_length=64, null=True, index=True)
    status = peewee.CharField(max_length=20, index=True)
    price = ExactDecimalField(null=True)
    amount = ExactDecimalField()
    filled = ExactDecimalField()
    remaining = ExactDecimalField()
    quote_filled = ExactDecimalField()
    average_price = ExactDecimalField(null=True)
    fees = JsonMapField()
    created_at = UtcDateTimeField(index=True)
    updated_at = UtcDateTimeField()
    last_trade_id = peewee.BigIntegerField(null=True)

    class Meta:
        table_name = "orders"
        indexes = (
            (("exchange", "exchange_order_id"), True),
            (("pair", "status", "created_at"), False),
        )


class OrderRow(OrderRowV1):
    """orders: the latest known state of every exchange order (migration 5 added `slippage_capped`; migration 7
    made exchange order ids unique per pair, partial: `db._migrations`; migration 12 the amend columns)."""

    # As migration 5 creates it: the database DEFAULT serves an engine that predates the column.
    slippage_capped = peewee.BooleanField(default=False, constraints=[peewee.SQL("DEFAULT FALSE")])
    # Migration 12: an amend outside the engine (the exchange's new client order id for it, its quantity now).
    exchange_client_order_id = peewee.CharField(max_length=64, null=True, index=False)
    amended_amount = ExactDecimalField(null=True)

    class Meta:
        table_name = "orders"
        indexes = (
            (("exchange", "pair", "exchange_order_id"), True),
            (("pair", "status", "created_at"), False),
        )


class FillRowV1(BaseRow):
    """fills as created by migration 1 (frozen: migration 9 replaced its unique key, see `FillRow`)."""

    id = peewee.BigAutoField()
    exchange = peewee.CharField(max_length=32)
    symbol = peewee.CharField(max_length=32)
    trade_id = peewee.BigIntegerField()
    pair = peewee.CharField(max_length=32)
    client_order_id = peewee.CharField(max_length=64, index=True)
    exchange_order_id = peewee.BigIntegerField()
    side = peewee.CharField(max_length=4)
    price = ExactDecimalField()
    quantity = ExactDecimalField()
    quote_quantity = ExactDecimalField()
    commission = ExactDecimalField()
    commission_asset = peewee.CharField(max_length=16)
    is_maker = peewee.BooleanField()
    time = UtcDateTimeField(index=True)

    class Meta:
        table_name = "fills"
        indexes = (
            (("exchange", "symbol", "trade_id"), True),
            (("pair", "time"), False),
        )


class FillRow(FillRowV1):
    """fills: one row per order's side of an exchange trade, never updated.

    Unique per exchange, symbol, trade id and exchange order id (migration 9): a self-trade (two of the account's
    orders on both sides, which a prevention mode of NONE lets happen) is one trade id with two rows in myTrades, one
    per order, and unique over the trade id alone the second side's fill was dropped.
    """

    class Meta:
        table_name = "fills"
        indexes = (
            (("exchange", "symbol", "trade_id", "exchange_order_id"), True),
            (("pair", "time"), False),
        )


class TradeRowV1(BaseRow):
    """trades as created by migration 1 (frozen: later columns arrive through migrations)."""

    id = peewee.BigAutoField()
    request_id = peewee.CharField(max_length=64, unique=True)
    pair = peewee.CharField(max_length=32)
    side = peewee.CharField(max_length=4)
    requested = ExactDecimalField()
    filled = ExactDecimalField()
    average_price = ExactDecimalField(null=True)
    fees = JsonMapField()
    status = peewee.CharField(max_length=16, index=True)
    strategy = peewee.CharField(max_length=64, null=True)
    timeframe = peewee.CharField(max_length=16, null=True)
    created_at = UtcDateTimeField(index=True)
    closed_at = UtcDateTimeField(null=True)
    remainder = ExactDecimalField()
    dust = peewee.BooleanField()
    note = peewee.TextField()

    class Meta:
        table_name = "trades"
        indexes = ((("pair", "created_at"), False),)


class TradeRow(TradeRowV1):
    """trades: one row per request (its primary order and any fallback), with the named indicators
    as columns (migration 2) so range queries such as "RSI < 30 on 5m" use an index."""

    rsi = ExactDecimalField(null=True)
    ewo = ExactDecimalField(null=True)
    ema = ExactDecimalField(null=True)
    sma = ExactDecimalField(null=True)
    indicators = JsonMapField(default="{}")

    class Meta:
        table_name = "trades"
        indexes = (
            (("pair", "created_at"), False),
            (("timeframe", "strategy", "created_at"), False),
            (("timeframe", "rsi"), False),
        )


class ErrorRow(BaseRow):
    """errors: append-only; `key` is a digest of the record so a replay stores it once."""

    id = peewee.BigAutoField()
    key = peewee.CharField(max_length=64, unique=True)
    operation = peewee.CharField(max_length=64)
    exchange_code = peewee.IntegerField(null=True, index=True)
    message = peewee.TextField()
    context = JsonMapField()
    pair = peewee.CharField(max_length=32, null=True)
    client_order_id = peewee.CharField(max_length=64, null=True)
    time = UtcDateTimeField(index=True)

    class Meta:
        table_name = "errors"
        indexes = ((("operation", "time"), False),)


class RequestRowV3(BaseRow):
    """requests as created by migration 3 (frozen; migration 4 dropped its two secondary indexes)."""

    id = peewee.BigAutoField()
    request_id = peewee.CharField(max_length=64, unique=True)
    idempotency_key = peewee.CharField(max_length=128, index=True)
    exchange = peewee.CharField(max_length=32)
    pair = peewee.CharField(max_length=32)
    payload = peewee.TextField()
    reference_price = ExactDecimalField(null=True)
    created_at = UtcDateTimeField(index=True)

    class Meta:
        table_name = "requests"


class RequestRow(BaseRow):
    """requests: each request as it was made, stored with its first order's write-ahead; crash recovery
    rebuilds the request's plan from it. The only updates: `canceled`, set once when the caller cancels, and the
    fallback's retry (`fallback_retry`, `fallback_retry_at`), set whenever the plan waits to re-send it.

    Only `request_id` is indexed: no query looks a request up by idempotency key or time range (recovery
    reads the unfinished ones whole, `idempotency_keys` reads every key), and each index is one more page
    written by every order's write-ahead commit.
    """

    id = peewee.BigAutoField()
    request_id = peewee.CharField(max_length=64, unique=True)
    idempotency_key = peewee.CharField(max_length=128)
    exchange = peewee.CharField(max_length=32)
    pair = peewee.CharField(max_length=32)
    payload = peewee.TextField()
    reference_price = ExactDecimalField(null=True)
    created_at = UtcDateTimeField()
    canceled = peewee.TextField(null=True)
    """Why the caller (or the shutdown) canceled the request while it worked (schema 6); set once, never cleared."""
    fallback_retry = peewee.CharField(max_length=64, null=True)
    """The order whose create failed with a retry-later error while the plan waits to re-send (schema 8)."""
    fallback_retry_at = UtcDateTimeField(null=True)
    """When the plan re-sends the remainder (schema 8); set with `fallback_retry`, the latest pair wins."""

    class Meta:
        table_name = "requests"


class SnapshotRow(BaseRow):
    """indicator_snapshots: append-only; `key` is a digest of the snapshot."""

    id = peewee.BigAutoField()
    key = peewee.CharField(max_length=64, unique=True)
    request_id = peewee.CharField(max_length=64, index=True)
    pair = peewee.CharField(max_length=32)
    timeframe = peewee.CharField(max_length=16, null=True)
    time = UtcDateTimeField()
    values = JsonMapField()

    class Meta:
        table_name = "indicator_snapshots"
        indexes = ((("pair", "timeframe", "time"), False),)


class InstanceRowV10(BaseRow):
    """engine_instance as created by migration 10 (frozen; migration 11 added `id_tag`)."""

    id = peewee.IntegerField(primary_key=True)
    id_namespace = peewee.CharField(max_length=32)

    class Meta:
        table_name = "engine_instance"


class InstanceRow(BaseRow):
    """engine_instance (schema 10): one row, what this database's engines share for good."""

    id = peewee.IntegerField(primary_key=True)
    id_namespace = peewee.CharField(max_length=32)
    """Mixed into every client order id made here (`engine.exchange.client_order_id`): idempotency keys are scoped
    to the database, so a key used again on a new database (or by another engine on the same account) never names
    an order of the old one at the exchange. Empty in a database that had orders before schema 10: its ids stay
    as they were, so its keys still find their orders."""
    id_tag = peewee.CharField(max_length=8, default="")
    """Carried by every client order id made here (schema 11; `engine.exchange.is_own_id`), so an engine tells its
    own orders from another engine's on the same exchange account. Empty in a database that had requests or orders
    before schema 11: its ids keep the untagged layout."""

    class Meta:
        table_name = "engine_instance"


MODELS: tuple[type[BaseRow], ...] = (
    SchemaVersionRow, OrderRow, FillRow, TradeRow, ErrorRow, SnapshotRow, RequestRow, InstanceRow,
)  # fmt: skip
"""The current schema, in creation order."""
