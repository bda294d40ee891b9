"""What crash recovery reads at start: unfinished requests with their orders and fills, other orders that
may still be live, and the idempotency keys already used.

A request is unfinished while it has no `trades` row (the trade is written when the request ends). Its
orders and fills are everything the engine knew when it stopped; the exchange is asked for the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import peewee

from db._mapping import fill_from_row, order_from_row, request_from_row, trade_from_row
from db._models import FillRow, InstanceRow, OrderRow, RequestRow, TradeRow
from db._repository import created_order
from engine.domain import OPEN_STATUSES, Fill, Order, RequestRecord, Trade

__all__ = ["RecoveryState", "id_namespace", "id_tag", "idempotency_keys", "load_recovery", "request_of"]

_CHUNK = 500
"""Rows per IN (...) list: far below SQLite's and PostgreSQL's parameter limits."""


@dataclass
class RecoveryState:
    """Everything the engine knew when it stopped that is not finished yet."""

    requests: list[RequestRecord] = field(default_factory=list)
    """Requests without a trade row, oldest first."""
    orders: list[Order] = field(default_factory=list)
    """Every order of those requests, plus every other order not known to be terminal (orphans)."""
    fills: dict[str, list[Fill]] = field(default_factory=dict)
    """Stored fills by client order id (trade id order), for the orders above."""
    trades: dict[str, Trade] = field(default_factory=dict)
    """The trade rows of the orphans' requests that were summed up already, by request id: a fill such an
    order gets after the restart is added to its trade (a late fill), as it would be without the restart."""

    def orders_of(self, request_id: str) -> list[Order]:
        """The orders of one request, primary first then fallbacks in the order they were sent."""
        return [o for o in self.orders if o.request_id == request_id]


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def load_recovery(db: peewee.Database, pairs: Iterable[str] | None = None) -> RecoveryState:
    """Read the recovery state (of `pairs` only, when given)."""
    wanted = None if pairs is None else list(pairs)
    finished = TradeRow.select(TradeRow.request_id).where(TradeRow.request_id == RequestRow.request_id)
    query = RequestRow.select().where(~peewee.fn.EXISTS(finished))
    if wanted is not None:
        query = query.where(RequestRow.pair.in_(wanted))
    requests = [request_from_row(r) for r in query.order_by(RequestRow.created_at, RequestRow.id).dicts().execute(db)]
    orders: dict[str, Order] = {}
    ids = [r.request_id for r in requests]
    for chunk in _chunks(ids):
        rows = OrderRow.select().where(OrderRow.request_id.in_(chunk)).order_by(OrderRow.created_at, OrderRow.id)
        for row in rows.dicts().execute(db):
            order = order_from_row(row)
            orders[order.client_order_id] = order
    live = OrderRow.select().where(OrderRow.status.in_([s.value for s in OPEN_STATUSES]))
    if wanted is not None:
        live = live.where(OrderRow.pair.in_(wanted))
    for row in live.order_by(created_order(db), OrderRow.id).dicts().execute(db):
        order = order_from_row(row)
        orders.setdefault(order.client_order_id, order)
    fills: dict[str, list[Fill]] = {}
    for chunk in _chunks(list(orders)):
        fill_rows = FillRow.select().where(FillRow.client_order_id.in_(chunk)).order_by(FillRow.trade_id)
        for row in fill_rows.dicts().execute(db):
            fill = fill_from_row(row)
            fills.setdefault(fill.client_order_id, []).append(fill)
    trades: dict[str, Trade] = {}
    summed = sorted({o.request_id for o in orders.values()} - set(ids))
    for chunk in _chunks(summed):
        for row in TradeRow.select().where(TradeRow.request_id.in_(chunk)).dicts().execute(db):
            trade = trade_from_row(row)
            trades[trade.request_id] = trade
    ordered = sorted(orders.values(), key=lambda o: (o.created_at, o.role.value != "primary", o.client_order_id))
    return RecoveryState(requests=requests, orders=ordered, fills=fills, trades=trades)


def id_namespace(db: peewee.Database) -> str:
    """This database's client order id namespace (`InstanceRow`; "" for a database that predates it)."""
    value = InstanceRow.select(InstanceRow.id_namespace).where(InstanceRow.id == 1).scalar(db)
    return str(value or "")


def id_tag(db: peewee.Database) -> str:
    """The tag of this database's client order ids (`InstanceRow`; "" for a database whose ids carry none)."""
    value = InstanceRow.select(InstanceRow.id_tag).where(InstanceRow.id == 1).scalar(db)
    return str(value or "")


def idempotency_keys(db: peewee.Database, pair: str | None = None) -> list[str]:
    """Every idempotency key ever stored (of one pair, when given)."""
    query = RequestRow.select(RequestRow.idempotency_key)
    if pair is not None:
        query = query.where(RequestRow.pair == pair)
    return [row[0] for row in query.tuples().execute(db)]


def request_of(db: peewee.Database, request_id: str) -> RequestRecord | None:
    """The stored request, if any."""
    rows = list(RequestRow.select().where(RequestRow.request_id == request_id).dicts().execute(db))
    return request_from_row(rows[0]) if rows else None
