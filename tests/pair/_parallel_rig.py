"""The exchange and the database behind tests/pair/test_parallel_stateful.py (not collected): a pure pair book under
`conflict_policy = "parallel"` driven the way its actor drives it, an exchange that answers its gateway requests
from its truth (limits rest, market orders fill at once, reports may be lost), and a database view of what the book
stored (the upserts' rules: fills once per trade, orders and trades forward only, a request's cancel never cleared),
from which a restarted book is restored.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from db import order_supersedes, request_merged, trade_supersedes
from engine.domain import ClientOrderId, FallbackKind, Fill, Order, OrderRequest, RequestId, RequestRecord, Trade
from engine.exchange import OrderNotFound, parse_user_data
from engine.execution import ExecutionConfig, SlippageAction
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.pair import (
    Alert,
    CancelAhead,
    Command,
    Emit,
    IntakeContext,
    PairBook,
    PairSettings,
    Persist,
    Resolve,
    Schedule,
    Send,
    Unschedule,
    Withdraw,
    WriteAhead,
)
from tests.pair._interleaving_helpers import PAIR, PRICE, RULES, STEP, T0, TruthOrder, TruthTrade

ASK = PRICE + 10
"""Where a market order fills (the book's ask)."""
GRACE_MS = 2_000


@dataclass
class Database:
    """What the book stored, as the database keeps it."""

    requests: dict[RequestId, RequestRecord] = field(default_factory=dict)
    orders: dict[ClientOrderId, Order] = field(default_factory=dict)
    fills: dict[tuple[str, int], Fill] = field(default_factory=dict)
    trades: dict[RequestId, Trade] = field(default_factory=dict)
    order_owners: dict[ClientOrderId, set[str]] = field(default_factory=dict)
    """Every request id an order was ever stored with (one, or a leg was shared)."""

    def store(self, item: Any) -> None:
        if isinstance(item, RequestRecord):
            rid = item.request.request_id
            self.requests[rid] = request_merged(self.requests.get(rid), item)
        elif isinstance(item, Order):
            self.order_owners.setdefault(item.client_order_id, set()).add(item.request_id)
            old = self.orders.get(item.client_order_id)
            if old is None or order_supersedes(item, old):
                self.orders[item.client_order_id] = item
        elif isinstance(item, Fill):
            key = (item.client_order_id, int(item.trade_id))
            assert self.fills.setdefault(key, item).quantity == item.quantity, "one trade stored with two quantities"
        elif isinstance(item, Trade):
            old_trade = self.trades.get(item.request_id)
            if old_trade is None or trade_supersedes(item, old_trade):
                self.trades[item.request_id] = item

    def filled_of(self, request_id: str) -> Decimal:
        """The stored fills of every order of the request."""
        own = {cid for cid, order in self.orders.items() if order.request_id == request_id}
        return sum((f.quantity for (cid, _), f in self.fills.items() if cid in own), Decimal(0))

    def recovery(self) -> tuple[list[RequestRecord], list[Order], dict[str, list[Fill]], dict[str, Trade]]:
        """`db.load_recovery`: requests without a trade, their orders and every live order, their fills, and the
        trades of summed-up requests whose orders are still live."""
        unfinished = [r for rid, r in self.requests.items() if rid not in self.trades]
        ids = {r.request.request_id for r in unfinished}
        orders = [o for o in self.orders.values() if o.request_id in ids or not o.status.is_terminal]
        fills: dict[str, list[Fill]] = {}
        for (cid, _), fill in sorted(self.fills.items()):
            if any(o.client_order_id == cid for o in orders):
                fills.setdefault(cid, []).append(fill)
        trades = {str(o.request_id): self.trades[o.request_id] for o in orders if o.request_id in self.trades}
        return unfinished, sorted(orders, key=lambda o: (o.created_at, o.client_order_id)), fills, trades


def settings() -> PairSettings:
    execution = ExecutionConfig(
        limit_timeout_ms=10_000, fallback=FallbackKind.MARKET, max_slippage=Decimal("0.005"),
        slippage_action=SlippageAction.CAP,
    )  # fmt: skip
    return PairSettings(execution=execution, conflict_policy="parallel", unknown_outcome_grace_ms=GRACE_MS)


class Exchange:
    """The exchange's truth about every order, answering the book's gateway requests."""

    def __init__(self) -> None:
        self.orders: dict[str, TruthOrder] = {}
        self.order_ids = itertools.count(7001)
        self.trade_ids = itertools.count(90_001)

    def create(self, req: GatewayRequest, now: int) -> dict[str, Any]:
        """The order comes to exist (a market order fills at once, whole); its create's FULL response."""
        p = req.params
        market = p["type"] == "MARKET"
        qty = Decimal(p["quantity"])
        order = TruthOrder(req.key, next(self.order_ids), qty, ASK if market else Decimal(p["price"]), now)
        self.orders[req.key] = order
        fills = []
        if market:
            trade = TruthTrade(next(self.trade_ids), qty, now)
            order.trades.append(trade)
            order.status = "FILLED"
            fills.append({"price": str(ASK), "qty": str(qty), "commission": "0", "commissionAsset": "BNB",
                          "tradeId": trade.trade_id})  # fmt: skip
        return order.rest_json(now=now) | {"transactTime": now, "fills": fills, "type": p["type"]}

    def cancel(self, cid: str) -> bool:
        order = self.orders.get(cid)
        if order is None or not order.open:
            return False
        order.status = "CANCELED"
        return True

    def answer(self, req: GatewayRequest, now: int) -> GatewayResult:
        cid = req.key
        order = self.orders.get(cid)
        if req.op is Op.CREATE_ORDER:
            assert order is None, f"{cid} created twice"
            return GatewayResult(req, data=self.create(req, now))
        if req.op is Op.CANCEL_ORDER:
            if not self.cancel(cid):
                return GatewayResult(req, error=OrderNotFound("Unknown order sent.", operation="cancel_order",
                                                              code=-2011))  # fmt: skip
            assert order is not None
            return GatewayResult(req, data=order.rest_json(cancel_id=f"cancel-{cid}", now=now))
        if req.op is Op.FETCH_ORDER:
            if order is None:
                return GatewayResult(req, error=OrderNotFound("Order does not exist.", operation="fetch_order",
                                                              code=-2013))  # fmt: skip
            return GatewayResult(req, data=order.rest_json(now=now))
        assert req.op is Op.MY_TRADES and order is not None, req
        return GatewayResult(req, data=order.my_trades())

    def fill(self, cid: str, share: int, now: int) -> bytes:
        """A trade of `share`/1000 of what is left of a resting order (at least one lot); its report."""
        order = self.orders[cid]
        qty = max(1, int((order.amount - order.cum) / STEP) * share // 1000) * STEP
        trade = TruthTrade(next(self.trade_ids), qty, now)
        order.trades.append(trade)
        order.status = "FILLED" if order.cum == order.amount else "PARTIALLY_FILLED"
        return order.report(now, "TRADE", trade)


class Driver:
    """Carries out a book's commands as its actor does; a restart replaces the book (and drops what was in flight)."""

    def __init__(self) -> None:
        self.now = T0
        self.db = Database()
        self.exchange = Exchange()
        self.outstanding: list[GatewayRequest] = []
        self.timers: dict[str, int] = {}
        self.alerts: list[Alert] = []
        self.answers: dict[tuple[int, RequestId], int] = {}
        self.generation = 0
        self.book = self._new_book()

    def _new_book(self) -> PairBook:
        book = PairBook(PAIR, RULES, settings())
        book.on_price(PRICE - 10, ASK, self.now)
        return book

    def run(self, commands: list[Command]) -> None:
        for cmd in commands:
            if isinstance(cmd, WriteAhead):
                self.db.store(cmd.order)  # durable, then the create leaves
                self.outstanding.append(cmd.send)
            elif isinstance(cmd, CancelAhead):
                self.db.store(cmd.record)
                self.outstanding.append(cmd.send)
            elif isinstance(cmd, Send):
                self.outstanding.append(cmd.request)
            elif isinstance(cmd, Persist):
                self.db.store(cmd.item)
            elif isinstance(cmd, Schedule):
                self.timers[cmd.key] = cmd.due_ms
            elif isinstance(cmd, Unschedule):
                self.timers.pop(cmd.key, None)
            elif isinstance(cmd, Alert):
                self.alerts.append(cmd)
            elif isinstance(cmd, Resolve):
                key = (self.generation, cmd.request_id)
                self.answers[key] = self.answers.get(key, 0) + 1
            elif isinstance(cmd, Withdraw):
                pass  # every create here has left already: the gateway withdraws nothing, its ack is canceled
            else:
                assert isinstance(cmd, Emit), cmd

    def tick(self) -> int:
        self.now += 7
        return self.now

    def place(self, req: OrderRequest) -> None:
        self.run(self.book.place(req, self.tick(), IntakeContext()))

    def answer(self, index: int) -> None:
        req = self.outstanding.pop(index)
        self.run(self.book.on_result(self.exchange.answer(req, self.tick()), self.now))

    def deliver(self, raw: bytes) -> None:
        self.run(self.book.on_report(parse_user_data(raw), self.tick()))

    def fire(self, key: str) -> None:
        self.now = max(self.now, self.timers.pop(key))
        self.run(self.book.on_timer(key, self.now))

    def restart(self, executed: list[bool], down_ms: int) -> int:
        """The engine dies: what was in flight reaches the exchange (`executed`, per request in flight) or not, and
        its answers are lost with the timers; a new book restores from the database `down_ms` later."""
        for req, done in zip(self.outstanding, executed, strict=False):
            if done and req.op is Op.CREATE_ORDER and req.key not in self.exchange.orders:
                self.exchange.create(req, self.now)
            elif done and req.op is Op.CANCEL_ORDER:
                self.exchange.cancel(req.key)
        self.outstanding, self.timers = [], {}
        self.now += down_ms
        self.generation += 1
        self.book = self._new_book()
        self.book.remember_keys(r.request.idempotency_key for r in self.db.requests.values())
        requests, orders, fills, trades = self.db.recovery()
        resumed = self.book.restore(requests, orders, fills, self.now, trades=trades)
        self.run(self.book.resume(self.now))
        # The start's open-orders scan (the root sends it once the pairs run): the live orders' first word.
        rows = [o.rest_json(now=self.now) for o in self.exchange.orders.values() if o.open]
        scan = GatewayResult(GatewayRequest(Op.OPEN_ORDERS, {"symbol": "BTCUSDT"}), data=rows)
        self.run(self.book.on_open_orders(scan, self.now, reconcile=True))
        return resumed

    def drain(self, steps: int = 2_000) -> None:
        """Every request to its end: answer what is in flight, else fire the earliest timer."""
        for _ in range(steps):
            if self.outstanding:
                self.answer(0)
            elif self.timers:
                self.fire(min(self.timers, key=lambda k: (self.timers[k], k)))
            else:
                return
        raise AssertionError(f"never quiet: {self.outstanding} {self.timers}")
