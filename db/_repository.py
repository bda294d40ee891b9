"""Queries returning domain types. Every function takes the database explicitly.

On SQLite decimals are TEXT, so numeric filters use `dec_cmp` (exact, registered by `BatchWriter` /
`register_sqlite_functions`) guarded by a `CAST(... AS REAL)` range, widened past SQLite's rounding, that the
expression index serves; on PostgreSQL NUMERIC compares exactly and natively.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import peewee

from db._fields import decimal_to_text
from db._mapping import error_from_row, fill_from_row, order_from_row, snapshot_from_row, trade_from_row
from db._models import ErrorRow, FillRow, OrderRow, SnapshotRow, TradeRow
from db._writer import register_sqlite_functions
from engine.domain import (
    NAMED_INDICATORS,
    OPEN_STATUSES,
    ErrorRecord,
    Fill,
    IndicatorSnapshot,
    Order,
    OrderStatus,
    Trade,
    TradeStatus,
)

IndicatorRange = tuple[Decimal | None, Decimal | None]
"""(low, high): low <= value < high; either side may be None (unbounded)."""


@dataclass(frozen=True)
class FillGap:
    """An order whose stored fills do not add up to its reported filled quantity (missing fill events)."""

    client_order_id: str
    order_filled: Decimal
    fills_total: Decimal

    @property
    def missing(self) -> Decimal:
        """Quantity reported filled but not backed by stored fills (negative: more fills than reported)."""
        return self.order_filled - self.fills_total


def _statuses(status: OrderStatus | str | Iterable[OrderStatus | str] | None) -> list[str] | None:
    return _values(OrderStatus, status)


def _values(kind: type[OrderStatus] | type[TradeStatus], status: object) -> list[str] | None:
    # A status filter as stored values: members, or their values in any letter case (one, or several).
    if status is None:
        return None
    given = [status] if isinstance(status, str) or not isinstance(status, Iterable) else list(status)
    try:
        return [kind(str(s).lower()).value for s in given]  # a member is a StrEnum: str() is its value
    except ValueError:
        valid = ", ".join(m.value for m in kind)
        raise ValueError(f"status: {status!r} is not one of {valid} (any letter case)") from None


def open_orders(db: peewee.Database, pair: str | None = None) -> list[Order]:
    """Every order that is or may be live on the exchange (non-terminal), oldest first."""
    return find_orders(db, pair=pair, status=OPEN_STATUSES)


def find_orders(
    db: peewee.Database,
    *,
    pair: str | None = None,
    status: OrderStatus | str | Iterable[OrderStatus | str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    request_id: str | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[Order]:
    """Orders filtered by pair, status(es), creation time [since, until) and request."""
    query = OrderRow.select()
    if pair is not None:
        query = query.where(OrderRow.pair == pair)
    statuses = _statuses(status)
    if statuses is not None:
        query = query.where(OrderRow.status.in_(statuses))
    if since is not None:
        query = query.where(OrderRow.created_at >= since)
    if until is not None:
        query = query.where(OrderRow.created_at < until)
    if request_id is not None:
        query = query.where(OrderRow.request_id == request_id)
    created = created_order(db) if statuses is not None else OrderRow.created_at
    order = (created.desc(), OrderRow.id.desc()) if newest_first else (created, OrderRow.id)
    query = query.order_by(*order)
    if limit is not None:
        query = query.limit(limit)
    return [order_from_row(row) for row in query.dicts().execute(db)]


def created_order(db: peewee.Database) -> Any:
    """`orders.created_at` to order a status-filtered query by. SQLite, without table statistics, walks (pair,
    created_at, id) to skip the sort and reads the pair's whole history; the status filter is served by (pair,
    status, created_at), sorting the few rows it finds. `+created_at` (a no-op in SQLite) keeps the planner off the
    former: 37 ms → 0.7 ms for a pair's open orders among 120,000."""
    if isinstance(db, peewee.SqliteDatabase):
        return peewee.NodeList((peewee.SQL("+"), OrderRow.created_at), glue="")
    return OrderRow.created_at


def get_order(db: peewee.Database, client_order_id: str) -> Order | None:
    """The stored order with this client order id, if any: the engine's id, or the one the exchange gave the order
    when it was amended outside the engine (`Order.exchange_client_order_id`)."""
    rows = list(OrderRow.select().where(OrderRow.client_order_id == client_order_id).dicts().execute(db))
    if not rows:
        query = OrderRow.select().where(OrderRow.exchange_client_order_id == client_order_id)
        rows = list(query.order_by(OrderRow.created_at.desc(), OrderRow.id.desc()).limit(1).dicts().execute(db))
    return order_from_row(rows[0]) if rows else None


def children_of(db: peewee.Database, client_order_id: str) -> list[Order]:
    """The fallback orders sent for the remainder of a primary order, oldest first."""
    query = (
        OrderRow.select()
        .where(OrderRow.parent_client_order_id == client_order_id)
        .order_by(OrderRow.created_at, OrderRow.id)
    )
    return [order_from_row(row) for row in query.dicts().execute(db)]


def fills_of(db: peewee.Database, client_order_id: str) -> list[Fill]:
    """The fills of one order, in time then trade id order."""
    query = FillRow.select().where(FillRow.client_order_id == client_order_id).order_by(FillRow.time, FillRow.trade_id)
    return [fill_from_row(row) for row in query.dicts().execute(db)]


def find_fills(
    db: peewee.Database,
    *,
    pair: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[Fill]:
    """Fills by pair and time [since, until), oldest first."""
    query = FillRow.select()
    if pair is not None:
        query = query.where(FillRow.pair == pair)
    if since is not None:
        query = query.where(FillRow.time >= since)
    if until is not None:
        query = query.where(FillRow.time < until)
    query = query.order_by(FillRow.time, FillRow.id)
    if limit is not None:
        query = query.limit(limit)
    return [fill_from_row(row) for row in query.dicts().execute(db)]


def _decimal_range(
    db: peewee.Database, column: peewee.Field, low: Decimal | None, high: Decimal | None
) -> list[peewee.Expression]:
    conds: list[peewee.Expression] = [column.is_null(False)]
    if not isinstance(db, peewee.SqliteDatabase):
        if low is not None:
            conds.append(column >= low)
        if high is not None:
            conds.append(column < high)
        return conds
    register_sqlite_functions(db)
    as_real = peewee.Cast(column, "REAL")
    # The REAL range only lets SQLite use the expression index; dec_cmp then decides exactly. It must hold every
    # matching row, so its bounds are widened (see _real_below).
    if low is not None:
        conds.append(as_real >= _real_below(low))
        conds.append(peewee.fn.dec_cmp(column, decimal_to_text(low)) >= 0)
    if high is not None:
        conds.append(as_real <= _real_above(high))
        conds.append(peewee.fn.dec_cmp(column, decimal_to_text(high)) < 0)
    return conds


# SQLite's text-to-REAL conversion (CAST, and so the expression index) is not correctly rounded: it can land an
# ulp away from the float Python's conversion picks, either way (more on a build without long double). A stored
# value equal to the bound then fell just outside `CAST(x AS REAL) >= <the bound as a float>`, dropped before dec_cmp
# saw it. Each bound is widened outward by a relative 2**-40 (thousands of ulps, still far below any difference
# an indicator cares about, so the index range barely grows) and two ulps more, which also covers zero and the
# subnormals, where a relative margin vanishes. A huge bound as a float is +-inf, which nextafter turns finite.
_REAL_SLACK = 2.0**-40  # float-ok: a margin for the index pre-filter, not a value


def _real_below(bound: Decimal) -> float:
    """A float at or below SQLite's REAL for every decimal >= `bound`."""
    x = float(bound)  # float-ok: index pre-filter only, widened, exact check follows
    if math.isfinite(x):
        x -= abs(x) * _REAL_SLACK
    return math.nextafter(math.nextafter(x, -math.inf), -math.inf)


def _real_above(bound: Decimal) -> float:
    """A float at or above SQLite's REAL for every decimal < `bound`."""
    x = float(bound)  # float-ok: index pre-filter only, widened, exact check follows
    if math.isfinite(x):
        x += abs(x) * _REAL_SLACK
    return math.nextafter(math.nextafter(x, math.inf), math.inf)


def find_trades(
    db: peewee.Database,
    *,
    pair: str | None = None,
    timeframe: str | None = None,
    strategy: str | None = None,
    status: TradeStatus | str | Iterable[TradeStatus | str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    indicators: Mapping[str, IndicatorRange] | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[Trade]:
    """Trades filtered by pair, timeframe, strategy, status, creation time and indicator ranges.

    `indicators` maps a name to (low, high) meaning low <= value < high, e.g. {"rsi": (None, 30)} for
    "RSI below 30". Named indicators (rsi, ewo, ema, sma) are filtered in SQL on indexed columns; any
    other name is filtered exactly in Python after the SQL filters (a trade without it never matches).
    """
    query = TradeRow.select()
    if pair is not None:
        query = query.where(TradeRow.pair == pair)
    if timeframe is not None:
        query = query.where(TradeRow.timeframe == timeframe)
    if strategy is not None:
        query = query.where(TradeRow.strategy == strategy)
    if status is not None:
        query = query.where(TradeRow.status.in_(_values(TradeStatus, status)))
    if since is not None:
        query = query.where(TradeRow.created_at >= since)
    if until is not None:
        query = query.where(TradeRow.created_at < until)
    extra: dict[str, IndicatorRange] = {}
    for name, bounds in (indicators or {}).items():
        low, high = (_bound(name, b) for b in bounds)
        if name in NAMED_INDICATORS:
            for cond in _decimal_range(db, getattr(TradeRow, name), low, high):
                query = query.where(cond)
        else:
            extra[name] = (low, high)
    order = (TradeRow.created_at.desc(), TradeRow.id.desc()) if newest_first else (TradeRow.created_at, TradeRow.id)
    query = query.order_by(*order)
    if limit is not None and not extra:
        query = query.limit(limit)
    trades = [trade_from_row(row) for row in query.dicts().execute(db)]
    if extra:
        trades = [t for t in trades if all(_within(t.indicators.get(n), r) for n, r in extra.items())]
        if limit is not None:
            trades = trades[:limit]
    return trades


def _bound(name: str, value: object) -> Decimal | None:
    # One number type for both kinds of indicator: a string bound filtered the named ones and raised TypeError
    # (Decimal >= str) on the others.
    if value is None:
        return None
    try:
        out = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"indicators: {name}'s bound {value!r} is not a number") from None
    if isinstance(value, bool) or not out.is_finite():
        raise ValueError(f"indicators: {name}'s bound {value!r} is not a finite number")
    return out


def _within(value: Decimal | None, bounds: IndicatorRange) -> bool:
    low, high = bounds
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value < high)


def get_trade(db: peewee.Database, request_id: str) -> Trade | None:
    """The stored trade of one request, if any."""
    rows = list(TradeRow.select().where(TradeRow.request_id == request_id).dicts().execute(db))
    return trade_from_row(rows[0]) if rows else None


def find_errors(
    db: peewee.Database,
    *,
    operation: str | None = None,
    exchange_code: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[ErrorRecord]:
    """Errors by kind (operation and/or exchange code) and time [since, until), oldest first."""
    query = ErrorRow.select()
    if operation is not None:
        query = query.where(ErrorRow.operation == operation)
    if exchange_code is not None:
        query = query.where(ErrorRow.exchange_code == exchange_code)
    if since is not None:
        query = query.where(ErrorRow.time >= since)
    if until is not None:
        query = query.where(ErrorRow.time < until)
    query = query.order_by(ErrorRow.time, ErrorRow.id)
    if limit is not None:
        query = query.limit(limit)
    return [error_from_row(row) for row in query.dicts().execute(db)]


def snapshots_of(db: peewee.Database, request_id: str) -> list[IndicatorSnapshot]:
    """Indicator snapshots recorded for one request, oldest first."""
    query = SnapshotRow.select().where(SnapshotRow.request_id == request_id).order_by(SnapshotRow.time, SnapshotRow.id)
    return [snapshot_from_row(row) for row in query.dicts().execute(db)]


def fill_gaps(db: peewee.Database, client_order_ids: Iterable[str] | None = None) -> list[FillGap]:
    """Orders whose `filled` differs from the sum of their stored fills (a fill event is missing).

    Summed exactly in Python (SQLite cannot sum TEXT decimals exactly).
    """
    orders = OrderRow.select(OrderRow.client_order_id, OrderRow.filled)
    fills = FillRow.select(FillRow.client_order_id, FillRow.quantity)
    if client_order_ids is not None:
        ids = list(client_order_ids)
        orders = orders.where(OrderRow.client_order_id.in_(ids))
        fills = fills.where(FillRow.client_order_id.in_(ids))
    totals: dict[str, Decimal] = {}
    for row in fills.tuples().execute(db):
        totals[row[0]] = totals.get(row[0], Decimal(0)) + Decimal(row[1])
    gaps = []
    for cid, raw_filled in orders.tuples().execute(db):
        filled = Decimal(raw_filled)
        total = totals.get(cid, Decimal(0))
        if filled != total:
            gaps.append(FillGap(cid, filled, total))
    return gaps


def count(db: peewee.Database, model: type[peewee.Model]) -> int:
    """Number of rows in `model`'s table."""
    return int(model.select().count(db))
