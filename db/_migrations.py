"""Versioned schema migrations, applied in order at start-up and recorded in `schema_version`.

Each migration runs in its own transaction together with its `schema_version` row, so a crash leaves
the schema at a whole version. A migration is never edited once released: it describes the schema as it
was (migration 1 uses the frozen `OrderRowV1` and `TradeRowV1`), and later changes arrive as new entries.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

import peewee
from loguru import logger
from playhouse.migrate import SchemaMigrator

from db._errors import DatabaseSchemaError
from db._fields import ExactDecimalField, JsonMapField, UtcDateTimeField
from db._models import (
    ErrorRow,
    FillRowV1,
    InstanceRow,
    InstanceRowV10,
    OrderRowV1,
    RequestRowV3,
    SchemaVersionRow,
    SnapshotRow,
    TradeRowV1,
)

# Arbitrary constant: serialises concurrent start-ups migrating the same PostgreSQL database.
_PG_LOCK_KEY = 0x62657865  # "bexe"


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    description: str
    apply: Callable[[peewee.Database, SchemaMigrator], None]


def _create_tables(db: peewee.Database, models: Sequence[type[peewee.Model]], *, safe: bool = False) -> None:
    """Create `models`' tables and indexes on `db`, in order, without binding the model classes to it.

    `db.bind_ctx` set each class's database for the length of the block: class state, shared by every thread, so
    two threads migrating two databases at once could create tables through each other's connection and leave a
    class bound to the wrong database when their blocks ended in the other order. A schema manager given the
    database explicitly renders the same DDL (the database's own column types) and touches no class.
    """
    for model in models:
        peewee.SchemaManager(model, db).create_all(safe=safe)


def _v1_initial(db: peewee.Database, _migrator: SchemaMigrator) -> None:
    _create_tables(db, (OrderRowV1, FillRowV1, TradeRowV1, ErrorRow, SnapshotRow))


def _v2_trade_indicators(db: peewee.Database, migrator: SchemaMigrator) -> None:
    ops = [migrator.add_column("trades", name, ExactDecimalField(null=True)) for name in ("rsi", "ewo", "ema", "sma")]
    ops.append(migrator.add_column("trades", "indicators", JsonMapField(default="{}")))
    ops.append(migrator.add_index("trades", ("timeframe", "strategy", "created_at"), False))
    ops.append(migrator.add_index("trades", ("timeframe", "rsi"), False))
    for op in ops:
        op.run()
    if isinstance(db, peewee.SqliteDatabase):
        # SQLite stores decimals as text; range queries compare CAST(rsi AS REAL), which this serves.
        db.execute_sql('CREATE INDEX "trades_timeframe_rsi_num" ON "trades" ("timeframe", CAST("rsi" AS REAL))')


def _v3_requests(db: peewee.Database, _migrator: SchemaMigrator) -> None:
    _create_tables(db, (RequestRowV3,))


def _v4_slimmer_write_ahead(db: peewee.Database, _migrator: SchemaMigrator) -> None:
    # Every order's write-ahead commit writes one B-tree page per index it touches (SQLite: the whole page
    # goes to the WAL and is fsynced). No query reads requests by idempotency key or by time (see RequestRow),
    # so those two indexes go. The orders indexes on parent_client_order_id and (exchange, exchange_order_id)
    # become partial: a primary order has no parent, and an intent has no exchange id yet, so the NULL entries
    # cost a page per commit while no query can use them (`children_of` asks `parent = ?`, which implies
    # NOT NULL, and NULLs never conflict in a unique index on either backend, so uniqueness is unchanged).
    for name in ("requests_idempotency_key", "requests_created_at"):
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
    db.execute_sql('DROP INDEX IF EXISTS "orders_parent_client_order_id"')
    db.execute_sql(
        'CREATE INDEX "orders_parent_client_order_id" ON "orders" ("parent_client_order_id") '
        'WHERE "parent_client_order_id" IS NOT NULL'
    )
    db.execute_sql('DROP INDEX IF EXISTS "orders_exchange_exchange_order_id"')
    db.execute_sql(
        'CREATE UNIQUE INDEX "orders_exchange_exchange_order_id" ON "orders" ("exchange", "exchange_order_id") '
        'WHERE "exchange_order_id" IS NOT NULL'
    )


def _v5_order_slippage_capped(_db: peewee.Database, migrator: SchemaMigrator) -> None:
    # A fallback capped at the slippage bound says so after a restart (the result's `slippage_capped`).
    # peewee fills the existing rows and sets NOT NULL but leaves no database DEFAULT: without one, an engine
    # predating this migration (its INSERT names no slippage_capped) could not write to a migrated database.
    # FALSE is a keyword on both backends (SQLite since 3.23).
    field = peewee.BooleanField(default=False, constraints=[peewee.SQL("DEFAULT FALSE")])
    migrator.add_column("orders", "slippage_capped", field).run()


def _v6_request_canceled(_db: peewee.Database, migrator: SchemaMigrator) -> None:
    # A caller's cancel is stored with the request before the cancel leaves: after a crash, a limit whose cancel
    # had failed (and so was open again) is still known to be canceled, and gets no fallback.
    migrator.add_column("requests", "canceled", peewee.TextField(null=True)).run()


def _v7_exchange_order_id_per_pair(db: peewee.Database, _migrator: SchemaMigrator) -> None:
    # Binance numbers orders per symbol (ccxt #26092, "per-symbol id sequences"): two pairs may hold the same
    # orderId. Unique over (exchange, exchange_order_id) alone, the second pair's rows were refused, its order
    # stayed pending_submit for good and a fallback carrying that primary's row as a companion never left.
    db.execute_sql('DROP INDEX IF EXISTS "orders_exchange_exchange_order_id"')
    db.execute_sql(
        'CREATE UNIQUE INDEX "orders_exchange_pair_exchange_order_id" ON "orders" ("exchange", "pair", '
        '"exchange_order_id") WHERE "exchange_order_id" IS NOT NULL'
    )


def _v8_request_fallback_retry(_db: peewee.Database, migrator: SchemaMigrator) -> None:
    # A plan waiting to re-send its fallback after a retry-later failure (FALLBACK_WAIT) is stored with its
    # request: after a restart the failed order (stored as rejected) looked like a rejection, and the request
    # ended fallback_rejected with its remainder never sent. Nullable: an older engine's INSERT still works.
    migrator.add_column("requests", "fallback_retry", peewee.CharField(max_length=64, null=True)).run()
    migrator.add_column("requests", "fallback_retry_at", UtcDateTimeField(null=True)).run()


def _v9_fill_per_order_side(db: peewee.Database, _migrator: SchemaMigrator) -> None:
    # A self-trade (the account's own orders on both sides, which a taker's prevention mode NONE allows) is one trade
    # id with a row per order in myTrades. Unique over (exchange, symbol, trade_id), the second side's fill was
    # dropped (ON CONFLICT DO NOTHING); with the exchange order id both are kept, and a repeat is still one row.
    db.execute_sql('DROP INDEX IF EXISTS "fills_exchange_symbol_trade_id"')
    db.execute_sql(
        'CREATE UNIQUE INDEX "fills_exchange_symbol_trade_id_exchange_order_id" ON "fills" ("exchange", "symbol", '
        '"trade_id", "exchange_order_id")'
    )


@dataclass(frozen=True)
class SpoolIds:
    """What the client order ids of records waiting in a spool, to be replayed into the database, were made with
    (`migrate`): a database found empty keeps their layout, or a key used again would not find its order."""

    unscoped: bool = False
    """Made without a namespace (by an engine before schema 10): migration 10 draws none."""
    untagged: bool = False
    """Carrying no tag (by an engine before schema 11): migration 11 draws none."""


# Set by `migrate` for the length of its run.
_SPOOL_IDS: ContextVar[SpoolIds | None] = ContextVar("spool_ids", default=None)
_NO_SPOOL = SpoolIds()


def _holds_requests(db: peewee.Database) -> bool:
    """Has this database made client order ids already? Requests, or orders of its own with the engine's prefix
    (adopted ones); orders of others (placed by hand, another engine's: external) do not count."""
    if db.execute_sql('SELECT 1 FROM "requests" LIMIT 1').fetchone() is not None:
        return True
    own_ids = f'SELECT 1 FROM "orders" WHERE "client_order_id" LIKE {db.param} AND "role" <> {db.param} LIMIT 1'
    return db.execute_sql(own_ids, ("bx-%", "external")).fetchone() is not None


def new_namespace() -> str:
    """A fresh database's client order id namespace: 64 random bits (tests replace it with a seeded draw)."""
    return secrets.token_hex(8)


def _v10_id_namespace(db: peewee.Database, _migrator: SchemaMigrator) -> None:
    # Client order ids were a digest of (pair, key) alone: a strategy reusing its keys on a new database met its
    # old orders at the exchange (Binance accepts a filled order's id again), and a create whose answer was lost was
    # looked up and resolved as the OLD order, fills and all. A new database draws its own namespace. One that
    # already holds requests keeps the ids it made (empty namespace): its keys must still find their orders.
    _create_tables(db, (InstanceRowV10,))
    unscoped = _holds_requests(db) or (_SPOOL_IDS.get() or _NO_SPOOL).unscoped
    InstanceRowV10.insert(id=1, id_namespace="" if unscoped else new_namespace()).execute(db)


def _v11_id_tag(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # Every engine's ids began `bx-`: an engine took another engine's orders on the same account for its own lost
    # ones (CRITICAL `adopted_order`, stored as its own, canceled at its stop on a shared pair). A new database's ids
    # carry a tag drawn from its namespace. One that already holds requests or orders keeps its untagged layout:
    # a key used again must still find its order under the id it was given.
    migrator.add_column("engine_instance", "id_tag", peewee.CharField(max_length=8, default="")).run()
    namespace = InstanceRow.select(InstanceRow.id_namespace).where(InstanceRow.id == 1).scalar(db)
    if namespace and not (_holds_requests(db) or (_SPOOL_IDS.get() or _NO_SPOOL).untagged):
        InstanceRow.update(id_tag=_v11_tag(namespace)).where(InstanceRow.id == 1).execute(db)


def _v11_tag(namespace: str) -> str:
    # Frozen with the migration: 4 base32 characters (20 bits) of SHA-256 over the namespace. The engine reads the
    # tag from the database (`db.id_tag`) and never derives it.
    digest = hashlib.sha256(f"tag\n{namespace}".encode()).digest()[:16]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()[:4]


def _v12_order_amend(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # An engine order amended outside the engine (the Binance UI's edit) was followed in memory only: after a restart
    # the amend was announced again, and the new client order id the exchange knows it by found nothing stored.
    # Nullable, no default: an engine predating this migration writes neither and erases neither (COALESCE).
    migrator.add_column("orders", "exchange_client_order_id", peewee.CharField(max_length=64, null=True)).run()
    migrator.add_column("orders", "amended_amount", ExactDecimalField(null=True)).run()
    # Partial: a lookup by the exchange's id (`db.get_order`) finds the few amended orders without a scan. Not
    # unique: the exchange lets a client order id be used again once its order has closed.
    db.execute_sql(
        'CREATE INDEX "orders_exchange_client_order_id" ON "orders" ("exchange_client_order_id") '
        'WHERE "exchange_client_order_id" IS NOT NULL'
    )


def _v13_orders_by_pair(db: peewee.Database, _migrator: SchemaMigrator) -> None:
    # A pair's orders newest first (`GET /orders?pair=`, `run.py orders --pair`, `Engine.orders(pair=…)`) read and
    # sorted every order of the pair (the pair-status index does not give creation order): 0.5 s at 120,000 orders,
    # on the persistence actor's connection, so every order's write-ahead waited behind a dashboard's poll.
    db.execute_sql('CREATE INDEX "orders_pair_created_at_id" ON "orders" ("pair", "created_at", "id")')


MIGRATIONS: Sequence[Migration] = (
    Migration(1, "orders, fills, trades, errors, indicator_snapshots", _v1_initial),
    Migration(2, "trades: indicator columns rsi/ewo/ema/sma and their indexes", _v2_trade_indicators),
    Migration(3, "requests: each request as made, for crash recovery", _v3_requests),
    Migration(
        4, "requests: drop unused indexes; orders: parent and exchange id indexes partial", _v4_slimmer_write_ahead
    ),
    Migration(5, "orders: slippage_capped (a fallback capped at the slippage bound)", _v5_order_slippage_capped),
    Migration(6, "requests: canceled (the caller's cancel, stored before it leaves)", _v6_request_canceled),
    Migration(
        7,
        "orders: exchange order ids unique per pair (Binance numbers them per symbol)",
        _v7_exchange_order_id_per_pair,
    ),
    Migration(
        8, "requests: fallback_retry and its time (a fallback waiting to be re-sent)", _v8_request_fallback_retry
    ),
    Migration(9, "fills: unique per order's side of a trade (a self-trade's two sides)", _v9_fill_per_order_side),
    Migration(10, "engine_instance: the namespace of this database's client order ids", _v10_id_namespace),
    Migration(11, "engine_instance: the tag of this database's client order ids", _v11_id_tag),
    Migration(12, "orders: exchange_client_order_id, amended_amount (amended outside the engine)", _v12_order_amend),
    Migration(13, "orders: index by pair and creation (a pair's orders newest first)", _v13_orders_by_pair),
)
LATEST_VERSION = MIGRATIONS[-1].version


def current_version(db: peewee.Database) -> int:
    """The highest applied migration (0 for an empty database)."""
    if not db.table_exists("schema_version"):
        return 0
    row = SchemaVersionRow.select(peewee.fn.MAX(SchemaVersionRow.version)).scalar(db)
    return int(row or 0)


def refuse_newer_schema(version: int) -> None:
    """Raise `DatabaseSchemaError` when `version` (a database's `current_version`) is past `LATEST_VERSION`."""
    if version > LATEST_VERSION:
        raise DatabaseSchemaError(
            f"database schema version {version} is newer than this engine knows ({LATEST_VERSION}): "
            "run a newer engine, or point it at another database"
        )


@contextlib.contextmanager
def _migration_transaction(db: peewee.Database) -> Iterator[None]:
    """A transaction that holds the migration lock on PostgreSQL.

    Every write of a migration happens in one of these, the CREATE of `schema_version` included: two sessions
    creating the same table at once collide in PostgreSQL's catalog (IntegrityError on pg_type) even with IF NOT
    EXISTS, which failed the start of all but one engine on a fresh database. The transaction-level advisory lock
    is released by the commit or rollback, so a failed migration cannot leave it held.

    The session's time limits (`db._url`): the statement limit is lifted, since a migration's DDL may rewrite a
    big table for minutes and cutting it would fail every start-up the same way. Waiting for the advisory lock is
    unbounded too: its holder is another migration, which finishes (the lock goes with its session if that dies).
    The migration's own table locks keep the session's limit: a DDL queued behind another session's lock would
    hold up every reader queued behind it, so it gives up (transient: the engine retries) instead.
    """
    with db.atomic():
        if isinstance(db, peewee.PostgresqlDatabase):
            db.execute_sql("SET LOCAL statement_timeout = 0")
            db.execute_sql("SET LOCAL lock_timeout = 0")
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
            db.execute_sql("SET LOCAL lock_timeout TO DEFAULT")  # the session's own (its connection options')
        yield


def migrate(db: peewee.Database, *, target: int | None = None, spool: SpoolIds | None = None) -> int:
    """Apply every pending migration up to `target` (default: all). Returns the resulting version. `spool`: what the
    ids of records waiting to be replayed into this database were made with (a database found empty keeps them).

    Raises:
        DatabaseSchemaError: the database's schema is newer than `LATEST_VERSION` (a newer engine migrated it);
            nothing was written to it.
    """
    goal = LATEST_VERSION if target is None else target
    # Before anything is written (the CREATE of schema_version included): an older engine must not touch a
    # schema it does not know, since it cannot tell what the newer one requires of its writes.
    refuse_newer_schema(current_version(db))
    with _migration_transaction(db):
        _create_tables(db, (SchemaVersionRow,), safe=True)
    migrator = SchemaMigrator.from_database(db)
    token = _SPOOL_IDS.set(spool)
    try:
        _apply(db, migrator, goal)
    finally:
        _SPOOL_IDS.reset(token)
    version = current_version(db)
    refuse_newer_schema(version)
    return version


def _apply(db: peewee.Database, migrator: SchemaMigrator, goal: int) -> None:
    for migration in MIGRATIONS:
        if migration.version > goal:
            break
        with _migration_transaction(db):
            found = current_version(db)
            refuse_newer_schema(found)  # a newer engine may have migrated since the check above
            if found >= migration.version:
                continue
            migration.apply(db, migrator)
            SchemaVersionRow.insert(
                version=migration.version, description=migration.description, applied_at=datetime.now(UTC)
            ).execute(db)
        logger.info("schema migration applied version={} description={}", migration.version, migration.description)
