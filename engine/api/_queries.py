"""Read-only queries of a running engine beyond single orders: health, balances, stored orders and trades.

Health and balances come from the root actor; stored orders, fills and trades from the persistence actor,
which commits what it holds before answering, so a query sees every write the engine made before it.

Raises (every query):
    engine.api.EngineStopped: the engine was stopped.
    db.DatabaseUnavailableError: the database is unreachable (writes are being spooled); retry later (a query
        that reads the database).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

import pykka

from engine.api._requests import _member, _NoStore, running
from engine.domain import OPEN_STATUSES, OrderStatus, Pair, TradeStatus, pair_to_symbol

if TYPE_CHECKING:
    from actors.persistence import PersistenceProxy
    from engine.clock import Clock
    from engine.domain import Fill, Order, Trade

__all__ = ["EngineQueries", "OrderDetail"]

_ASK_TIMEOUT_S = 15.0
_E = TypeVar("_E", bound=Enum)


def _members(name: str, kind: type[_E], value: object) -> list[_E] | None:
    """An enum filter as members of `kind`: one or several, each the member or its value in any letter case (as
    `place_order` takes them); None: no filter. An unknown value raises ValueError listing the valid ones."""
    if value is None:
        return None
    if isinstance(value, str | Enum) or not isinstance(value, Iterable):
        return [_member(name, kind, value, str.lower)]
    return [_member(name, kind, v, str.lower) for v in value]


def _statuses(value: object) -> list[OrderStatus] | None:
    """`orders`' status filter: `_members`, plus "open-any" (every status not terminal) as the CLI and API take it."""
    if value is None:
        return None
    # Materialised once: a generator handed on after being looked at would filter on nothing (`IN ()`, no rows).
    values = [value] if isinstance(value, str | Enum) or not isinstance(value, Iterable) else list(value)
    wide = [v for v in values if isinstance(v, str) and v.lower() == "open-any"]
    rest = [v for v in values if v not in wide]
    found = set(_members("status", OrderStatus, rest) or [])
    return sorted(found | set(OPEN_STATUSES) if wide else found, key=lambda s: s.value)


def _moment(name: str, value: datetime | str | None, now: datetime) -> datetime | None:
    """A time filter: an aware datetime, or a string as the CLI takes it (an ISO time, UTC without a zone, or an
    age such as 30m, 12h, 7d before `now`). A naive datetime is refused: local time or UTC cannot be told apart.

    Raises:
        ValueError: a naive datetime, or a string that is neither.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name}: a datetime without a time zone is ambiguous; pass an aware one "
                             "(datetime.now(UTC) - timedelta(hours=1)) or a string (an ISO time, UTC without a zone, "
                             "or an age: 30m, 12h, 7d)")  # fmt: skip
        return value
    if isinstance(value, str):
        from db.cli import parse_since

        try:
            return parse_since(value, now)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"{name}: {exc}".replace("--since ", "")) from None
    raise ValueError(f"{name}: a datetime or a string, got {type(value).__name__}")


def pair_arg(pair: object) -> Pair:
    """A query's `pair`, checked as a request's is ("BASE/QUOTE" in upper case): a misspelt one answered "no
    orders" where a request would have been refused, and a strategy that places when it sees none doubled up.

    Raises:
        ValueError: not such a pair.
    """
    if not isinstance(pair, str):
        raise ValueError(f"pair must be a string like 'BTC/USDT', got {type(pair).__name__}")
    pair_to_symbol(pair)  # raises ValueError, naming the expected form
    return Pair(pair)


def order_filters(now: datetime, pair: str | None, status: object, since: datetime | str | None,
                  until: datetime | str | None, request_id: str | None,
                  limit: int | None) -> dict[str, Any]:  # fmt: skip
    """`db.find_orders`' filters from `Engine.orders`' (and `History.orders`') arguments, checked."""
    pair = None if pair is None else pair_arg(pair)
    return {"pair": pair, "status": _statuses(status), "since": _moment("since", since, now),
            "until": _moment("until", until, now), "request_id": request_id, "limit": limit}  # fmt: skip


def trade_filters(now: datetime, pair: str | None, status: object, since: datetime | str | None,
                  until: datetime | str | None, strategy: str | None, timeframe: str | None,
                  indicators: Mapping[str, tuple[Any, Any]] | None, limit: int | None) -> dict[str, Any]:  # fmt: skip
    """`db.find_trades`' filters from `Engine.trades`' (and `History.trades`') arguments, checked."""
    pair = None if pair is None else pair_arg(pair)
    return {"pair": pair, "status": _members("status", TradeStatus, status), "since": _moment("since", since, now),
            "until": _moment("until", until, now), "strategy": strategy, "timeframe": timeframe,
            "indicators": dict(indicators) if indicators else None, "limit": limit}  # fmt: skip


class OrderDetail:
    """One order with its fills, its fallback legs (each with their fills) and its request's trade."""

    __slots__ = ("fallbacks", "fills", "order", "trade")

    def __init__(
        self, order: Order, fills: list[Fill], fallbacks: list[tuple[Order, list[Fill]]], trade: Trade | None
    ) -> None:
        self.order = order
        self.fills = fills
        self.fallbacks = fallbacks
        self.trade = trade


class EngineQueries:
    """Mixed into `Engine`: answers from the root actor (health, balances) and the database (orders, trades)."""

    _root: Any
    _routing: Any
    _stopped: bool
    clock: Clock
    get_order: Callable[[str, str], Order | None]
    _require_running: Callable[[str], None]

    @running("active_requests")
    def active_requests(self, pair: str) -> list[str]:
        """The ids of `pair`'s requests still executing (queued behind another, waiting for the ack, working);
        empty while its actor is not running (restarting, or halted past the restart budget).

        Raises:
            EngineStopped: the engine was stopped.
        """
        target = self._routing.get(pair_arg(pair))
        if target is None:
            return []
        try:
            return [str(r) for r in target.active_requests().get(timeout=_ASK_TIMEOUT_S)]
        except pykka.ActorDeadError:
            return []

    @running("health")
    def health(self) -> dict[str, Any]:
        """Health of every part: streams, database, gateway (queue, rate budget), halted or not — and, in a
        dry run on a real venue, the public price feed of the paper exchange (`paper_feed`)."""
        out = dict(self._root.proxy().health().get(timeout=_ASK_TIMEOUT_S))
        feed = getattr(getattr(self, "sim", None), "price_feed", None)
        status = getattr(feed, "status", None)
        if callable(status):
            s = status()
            out["paper_feed"] = {
                "fresh": s.fresh, "connected": s.connected, "last_ok_ms": s.last_ok_ms, "updates": s.updates,
                "errors": s.errors, "last_error": s.last_error,
            }  # fmt: skip
        return out

    @running("balances")
    def balances(self) -> dict[str, Any]:
        """The account's balances as last read from the exchange (refreshed every minute)."""
        return dict(self._root.proxy().balances().get(timeout=_ASK_TIMEOUT_S))

    def _store(self) -> PersistenceProxy:
        # Its callers are `running` queries: they checked the engine is not stopped, and turn a stop that
        # overtakes this ask into `EngineStopped`.
        store = self._root.proxy().store().get(timeout=_ASK_TIMEOUT_S)
        if store is None:
            raise _NoStore("the engine has no persistence actor (stopped?)")
        proxy: PersistenceProxy = store.proxy
        return proxy

    @running("order_detail")
    def order_detail(self, pair: str, client_order_id: str) -> OrderDetail | None:
        """One order of `pair` (live state when its pair actor holds it, else as stored) with its fills, fallback
        legs and its request's trade (the summary, final once the request is done); None when `pair` has no such
        order (`get_order`)."""
        order = self.get_order(pair, client_order_id)
        if order is None:
            return None
        store = self._store()
        # By the engine's id: the one asked may be the exchange's for an order amended outside the engine.
        fills_f = store.fills_of(order.client_order_id)
        children_f = store.children_of(order.client_order_id)
        trade_f = store.get_trade(order.request_id)
        fills: list[Fill] = fills_f.get(timeout=_ASK_TIMEOUT_S)
        children: list[Order] = children_f.get(timeout=_ASK_TIMEOUT_S)
        fallbacks = [(child, store.fills_of(child.client_order_id).get(timeout=_ASK_TIMEOUT_S)) for child in children]
        trade: Trade | None = trade_f.get(timeout=_ASK_TIMEOUT_S)
        return OrderDetail(order, fills, fallbacks, trade)

    @running("orders")
    def orders(
        self,
        *,
        pair: str | None = None,
        status: OrderStatus | str | Iterable[OrderStatus | str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        request_id: str | None = None,
        limit: int | None = None,
    ) -> list[Order]:
        """Stored orders, newest first, filtered by pair, status(es), creation time [since, until), request.

        `status`: an `OrderStatus`, its value in any letter case ("open", "FILLED"), "open-any" (every status not
        terminal), or several of them. `since`/`until`: an aware datetime, or a string as the CLI's `--since` (an
        ISO time, UTC without a zone, or an age: "30m", "12h", "7d").

        Raises:
            ValueError: an unknown status (the message lists the valid ones), a naive datetime, a bad time string.
        """
        filters = order_filters(self.clock.now(), pair, status, since, until, request_id, limit)
        found: list[Order] = self._store().find_orders(**filters, newest_first=True).get(timeout=_ASK_TIMEOUT_S)
        return found

    @running("trades")
    def trades(
        self,
        *,
        pair: str | None = None,
        status: TradeStatus | str | Iterable[TradeStatus | str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        strategy: str | None = None,
        timeframe: str | None = None,
        indicators: Mapping[str, tuple[Any, Any]] | None = None,
        limit: int | None = None,
    ) -> list[Trade]:
        """Stored trades (one per request), newest first, filtered like `db.find_trades`.

        `indicators` maps a name to (low, high), meaning low <= value < high (either may be None). `status`: a
        `TradeStatus`, its value in any letter case ("partial", "FILLED"), or several of them. `since`/`until`: as
        for `orders`.

        Raises:
            ValueError: an unknown status (the message lists the valid ones), a naive datetime, a bad time string.
        """
        filters = trade_filters(self.clock.now(), pair, status, since, until, strategy, timeframe, indicators, limit)
        found: list[Trade] = self._store().find_trades(**filters, newest_first=True).get(timeout=_ASK_TIMEOUT_S)
        return found
