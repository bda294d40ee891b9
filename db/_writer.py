"""Batched, idempotent writes: one transaction per batch, upserts on the natural keys.

The hot path talks to the driver directly (psycopg2 `mogrify` into one round trip, sqlite3 `executemany`) with SQL
generated once, because peewee's per-row query building costs about half the throughput on PostgreSQL.

Forward-only rule for orders (the same in SQL and in `order_supersedes`): a new version replaces the
stored one when it has filled more; or filled the same and either closes a stored open order (whatever its
`updated_at`: the wall clock may have stepped back, and an order once terminal stays so) or, both open or
both terminal, is not older (`updated_at`). It never moves a terminal order back to a non-terminal status.
So a stale or replayed row never lowers `filled` nor reopens an order.
Trades follow the same rule without `updated_at`. Fills, errors and snapshots are insert-only; requests too, but for
`canceled`, set once (a copy without it never clears it).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import peewee

from db._fields import decimal_to_text
from db._mapping import Record, content_key
from db._rows import (
    _ERROR_COLS,
    _FILL_COLS,
    _ORDER_COLS,
    _REQUEST_COLS,
    _SNAPSHOT_COLS,
    _TRADE_COLS,
    RowBuilder,
    _identity,
    _naive_utc,
)
from engine.domain import (
    TERMINAL_STATUSES,
    ErrorRecord,
    Fill,
    IndicatorSnapshot,
    Order,
    RequestRecord,
    Trade,
    TradeStatus,
)

_TERMINAL_SQL = ", ".join(f"'{s.value}'" for s in sorted(TERMINAL_STATUSES))
_OPEN_TRADE = TradeStatus.OPEN.value


def request_merged(old: RequestRecord | None, new: RequestRecord) -> RequestRecord:
    """What one batch stores of a request told twice (the rule of the request upsert): the cancel once set stays
    set, and the fallback's retry is the latest one told."""
    if old is None:
        return new
    canceled = old.canceled if old.canceled is not None else new.canceled
    retry = new if new.fallback_retry is not None else old
    if canceled == old.canceled and retry is old:
        return old
    update = {
        "canceled": canceled,
        "fallback_retry": retry.fallback_retry,
        "fallback_retry_at": retry.fallback_retry_at,
    }
    return old.model_copy(update=update)


def order_supersedes(new: Order, old: Order) -> bool:
    """True when `new` may replace the stored `old` (the forward-only rule)."""
    if new.filled != old.filled:
        return new.filled > old.filled
    if old.status.is_terminal != new.status.is_terminal:
        return new.status.is_terminal
    return new.updated_at >= old.updated_at


def trade_supersedes(new: Trade, old: Trade) -> bool:
    """True when `new` may replace the stored `old` trade."""
    if new.filled != old.filled:
        return new.filled > old.filled
    return not (old.status is not TradeStatus.OPEN and new.status is TradeStatus.OPEN)


def _dec_cmp(a: str | None, b: str | None) -> int | None:
    """SQLite helper: exact comparison of two canonical decimal texts (-1, 0, 1)."""
    if a is None or b is None:
        return None
    x, y = Decimal(a), Decimal(b)
    return (x > y) - (x < y)


def register_sqlite_functions(db: peewee.Database) -> None:
    """Give SQLite connections `dec_cmp(a, b)` for exact decimal comparisons of TEXT columns."""
    if isinstance(db, peewee.SqliteDatabase):
        db.register_function(_dec_cmp, "dec_cmp", 2, deterministic=True)


@dataclass
class WriteStats:
    """What one batch contained after in-batch de-duplication."""

    orders: int = 0
    fills: int = 0
    trades: int = 0
    errors: int = 0
    snapshots: int = 0
    records: int = 0
    seconds: float = 0.0  # float-ok: a duration for logs


class BatchWriter(RowBuilder):
    """Writes batches of domain records to one database connection (owned by the caller's thread)."""

    def __init__(self, db: peewee.Database) -> None:
        self._db = db
        self._sqlite = isinstance(db, peewee.SqliteDatabase)
        register_sqlite_functions(db)
        self._dec: Callable[[Decimal | None], Any] = self._sqlite_dec if self._sqlite else _identity
        self._dec1: Callable[[Decimal], Any] = decimal_to_text if self._sqlite else _identity
        self._ts: Callable[[datetime | None], Any] = self._sqlite_ts if self._sqlite else _naive_utc
        self._sql = {
            "orders": self._upsert_sql("orders", _ORDER_COLS, "client_order_id", self._order_guard()),
            "fills": self._insert_sql("fills", _FILL_COLS, "exchange, symbol, trade_id, exchange_order_id"),
            "trades": self._upsert_sql("trades", _TRADE_COLS, "request_id", self._trade_guard()),
            "errors": self._insert_sql("errors", _ERROR_COLS, '"key"'),
            "indicator_snapshots": self._insert_sql("indicator_snapshots", _SNAPSHOT_COLS, '"key"'),
            "requests": self._request_sql(),
        }
        columns = {
            "orders": _ORDER_COLS,
            "fills": _FILL_COLS,
            "trades": _TRADE_COLS,
            "errors": _ERROR_COLS,
            "indicator_snapshots": _SNAPSHOT_COLS,
            "requests": _REQUEST_COLS,
        }
        self._pg_parts: dict[str, tuple[bytes, str, bytes]] = {}
        self._pg_prepare: dict[str, str] = {}
        self._pg_execute: dict[str, str] = {}
        self._pg_prepared_on: object = None  # the driver connection holding the prepared statements
        if not self._sqlite:
            for table, sql in self._sql.items():
                head, tail = sql.split(" VALUES %s ", 1)
                template = "(" + ", ".join("%s" for _ in columns[table]) + ")"
                self._pg_parts[table] = ((head + " VALUES ").encode(), template, (" " + tail).encode())
                name = f"bexec_put_{table}"
                params = ", ".join(f"${i}" for i in range(1, len(columns[table]) + 1))
                self._pg_prepare[name] = f"PREPARE {name} AS {head} VALUES ({params}) {tail}"
                self._pg_execute[table] = f"EXECUTE {name} {template}"

    @property
    def db(self) -> peewee.Database:
        """The database written to."""
        return self._db

    def write(self, records: Sequence[Record]) -> WriteStats:
        """Commit `records` in one transaction. On any error nothing is stored and the error is raised."""
        orders: dict[str, Order] = {}
        trades: dict[str, Trade] = {}
        # Fills need no de-duplication here: ON CONFLICT DO NOTHING absorbs repeats even within one
        # statement (only DO UPDATE refuses to touch a row twice).
        fills: list[Fill] = []
        errors: dict[str, ErrorRecord] = {}
        snapshots: dict[str, IndicatorSnapshot] = {}
        requests: dict[str, RequestRecord] = {}
        for rec in records:
            if isinstance(rec, Fill):
                fills.append(rec)
            elif isinstance(rec, Order):
                old = orders.get(rec.client_order_id)
                if old is None or order_supersedes(rec, old):
                    orders[rec.client_order_id] = rec
            elif isinstance(rec, Trade):
                prev = trades.get(rec.request_id)
                if prev is None or trade_supersedes(rec, prev):
                    trades[rec.request_id] = rec
            elif isinstance(rec, ErrorRecord):
                errors.setdefault(content_key(rec), rec)
            elif isinstance(rec, RequestRecord):
                requests[rec.request_id] = request_merged(requests.get(rec.request_id), rec)
            else:
                snapshots.setdefault(content_key(rec), rec)
        stats = WriteStats(
            orders=len(orders),
            fills=len(fills),
            trades=len(trades),
            errors=len(errors),
            snapshots=len(snapshots),
            records=len(records),
        )
        started = time.perf_counter()
        work = (
            ("requests", [self._request_row(r) for r in requests.values()]),
            ("fills", [self._fill_row(f) for f in fills]),
            ("orders", [self._order_row(o) for o in orders.values()]),
            ("trades", [self._trade_row(t) for t in trades.values()]),
            ("errors", [self._error_row(k, e) for k, e in errors.items()]),
            ("indicator_snapshots", [self._snapshot_row(k, s) for k, s in snapshots.items()]),
        )
        conn = self._db.connection()  # raises if the connection cannot be opened
        try:
            if self._sqlite:
                self._write_sqlite(conn, work)
            else:
                self._write_pg(conn.cursor(), work)
        except BaseException:
            self.rollback_quietly()
            raise
        stats.seconds = time.perf_counter() - started
        return stats

    def _write_sqlite(self, conn: sqlite3.Connection, work: Sequence[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """BEGIN, one statement per table, COMMIT on the driver's connection.

        Straight on sqlite3 rather than through peewee's begin/cursor/commit (each re-checks the connection and
        makes a cursor); the errors are the driver's own, which `is_transient`/`is_bad_record` classify. A
        write-ahead carries one row per table, and `execute` binds one row with less work than `executemany`.
        """
        conn.execute("BEGIN")
        for table, rows in work:
            if len(rows) == 1:
                conn.execute(self._sql[table], rows[0])
            elif rows:
                conn.executemany(self._sql[table], rows)
        conn.execute("COMMIT")

    def _write_pg(self, cursor: Any, work: Sequence[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """Every statement of the batch in one round trip.

        BEGIN, one statement per table and COMMIT were a round trip each (six for an order's write-ahead
        with the previous order's rows). The connection is in autocommit mode (peewee's), and a string of
        several statements sent as one simple query runs as one implicit transaction: all or nothing, then
        an ordinary commit, which waits for the WAL flush like any other while synchronous_commit is on.
        The rows are bound client-side by `mogrify`, as `execute_values` did.

        A table with one row in the batch (every table of a write-ahead) goes through a statement prepared once
        per session: parsing and planning a 21-column upsert cost the server more than executing it (about
        half of the write-ahead's round trip, measured). The statement text is the same upsert, so the
        forward-only guard and the conflict handling are unchanged.
        """
        statements = []
        for table, rows in work:
            if not rows:
                continue
            if len(rows) == 1:
                self._prepare_pg(cursor)
                statements.append(cursor.mogrify(self._pg_execute[table], rows[0]))
                continue
            head, template, tail = self._pg_parts[table]
            values = b",".join([cursor.mogrify(template, row) for row in rows])
            statements.append(head + values + tail)
        if statements:
            cursor.execute(b";".join(statements))

    def _prepare_pg(self, cursor: Any) -> None:
        """Prepare the single-row upserts on this session once (a reconnect gets a new driver connection)."""
        if self._pg_prepared_on is cursor.connection:
            return
        # Another writer on the same session may have prepared them already (same names, same text).
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'bexec_put_%'")
        have = {row[0] for row in cursor.fetchall()}
        missing = [sql for name, sql in self._pg_prepare.items() if name not in have]
        if missing:
            cursor.execute(";".join(missing))
        self._pg_prepared_on = cursor.connection

    def rollback_quietly(self) -> None:
        """Roll back if possible; a dead connection has nothing to roll back."""
        with contextlib.suppress(Exception):
            self._db.rollback()

    # SQL -------------------------------------------------------------------------------------------

    def _values(self, cols: Sequence[str]) -> str:
        return "(" + ", ".join("?" for _ in cols) + ")" if self._sqlite else "%s"

    def _insert_sql(self, table: str, cols: Sequence[str], key: str) -> str:
        names = ", ".join(f'"{c}"' for c in cols)
        return f'INSERT INTO "{table}" ({names}) VALUES {self._values(cols)} ON CONFLICT ({key}) DO NOTHING'

    def _request_sql(self) -> str:
        # A request is written once, with its first write-ahead; again when its caller cancels it (`canceled`
        # changes, once: a replayed or older copy never clears it) or its plan waits to re-send the fallback (the
        # retry's order and time change together; a copy without them keeps the stored ones).
        names = ", ".join(f'"{c}"' for c in _REQUEST_COLS)
        retry = 'excluded."fallback_retry" IS NOT NULL'
        return (
            f'INSERT INTO "requests" ({names}) VALUES {self._values(_REQUEST_COLS)} ON CONFLICT ("request_id") '
            'DO UPDATE SET "canceled" = COALESCE("requests"."canceled", excluded."canceled"), '
            f'"fallback_retry" = CASE WHEN {retry} THEN excluded."fallback_retry" '
            'ELSE "requests"."fallback_retry" END, '
            f'"fallback_retry_at" = CASE WHEN {retry} THEN excluded."fallback_retry_at" '
            'ELSE "requests"."fallback_retry_at" END '
            f'WHERE ("requests"."canceled" IS NULL AND excluded."canceled" IS NOT NULL) OR {retry}'
        )

    def _upsert_sql(self, table: str, cols: Sequence[str], key: str, guard: str) -> str:
        names = ", ".join(f'"{c}"' for c in cols)
        sets = []
        for c in cols:
            if c == key:
                continue
            if c in ("exchange_order_id", "exchange_client_order_id", "amended_amount"):
                # A later version without the exchange's id or its amend (e.g. a replayed intent) must not erase it.
                sets.append(f'"{c}" = COALESCE(excluded."{c}", "{table}"."{c}")')
            else:
                sets.append(f'"{c}" = excluded."{c}"')
        return (
            f'INSERT INTO "{table}" ({names}) VALUES {self._values(cols)} '
            f'ON CONFLICT ("{key}") DO UPDATE SET {", ".join(sets)} WHERE {guard}'
        )

    def _cmp(self, a: str, b: str) -> str:
        return (
            f"dec_cmp({a}, {b})" if self._sqlite else f"(CASE WHEN {a} > {b} THEN 1 WHEN {a} < {b} THEN -1 ELSE 0 END)"
        )

    def _order_guard(self) -> str:
        c = self._cmp('excluded."filled"', '"orders"."filled"')
        new_closed = f'(excluded."status" IN ({_TERMINAL_SQL}))'  # parenthesised: IN binds no tighter than =
        old_closed = f'("orders"."status" IN ({_TERMINAL_SQL}))'
        return (
            f"({c} > 0 OR ({c} = 0 AND ("
            f"({new_closed} AND NOT {old_closed}) "
            f'OR ({new_closed} = {old_closed} AND excluded."updated_at" >= "orders"."updated_at"))))'
        )

    def _trade_guard(self) -> str:
        c = self._cmp('excluded."filled"', '"trades"."filled"')
        return (
            f"({c} > 0 OR ({c} = 0 "
            f'AND ("trades"."status" = \'{_OPEN_TRADE}\' OR excluded."status" <> \'{_OPEN_TRADE}\')))'
        )
