"""`execution.conflict_policy = "parallel"` in the pure pair book: requests of one side of a pair execute at once,
each with its own limit, timer, fallback and trade; one of the other side is refused `conflict` (self-trade).
"refuse" and "queue" stay as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from engine.api import Accepted, Refusal, RefusalReason
from engine.domain import (
    ClientOrderId,
    Order,
    OrderRequest,
    OrderRole,
    OrderStatus,
    OrderType,
    RequestId,
    Side,
    Trade,
    TradeStatus,
)
from engine.exchange import RetryLater, parse_user_data
from engine.execution import DefaultRiskManager
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.pair import Alert, Command, Persist, Unschedule
from tests.pair._book_helpers import PAIR, T0, Harness, order_json, request


class _Parallel(Harness):
    """The harness under "parallel", dropping timers the book unschedules."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**{"conflict_policy": "parallel", **settings})
        self.alerts: list[Alert] = []

    def run(self, commands: list[Command]) -> None:
        super().run(commands)
        for cmd in commands:
            if isinstance(cmd, Unschedule):
                self.timers.pop(cmd.key, None)
            elif isinstance(cmd, Alert):
                self.alerts.append(cmd)

    def creates(self) -> list[GatewayRequest]:
        return [r for r in self.sent if r.op is Op.CREATE_ORDER]

    def reply(self, req: GatewayRequest, data: Any = None, error: Any = None) -> None:
        self.run(self.book.on_result(GatewayResult(req, data=data, error=error), self.now))

    def legs_filled(self, request_id: RequestId) -> Decimal:
        return sum((f.quantity for f in self.fills() if self._request_of(f.client_order_id) == request_id), Decimal(0))

    def _request_of(self, cid: ClientOrderId) -> RequestId | None:
        orders = [o for o in self.stored if isinstance(o, Order) and o.client_order_id == cid]
        return orders[-1].request_id if orders else None


def _ladder(h: _Parallel, *prices: str, timeout_s: int = 10, gap_ms: int = 2_000) -> list[OrderRequest]:
    """Buys at `prices`, placed `gap_ms` apart, each acknowledged resting."""
    placed = []
    for price in prices:
        req = request(price=price, limit_timeout_s=Decimal(timeout_s))
        assert h.place(req) is None  # not answered yet: its create is on its way
        create = h.creates()[-1]
        assert create.params["price"] == price
        h.reply(create, order_json(create, "NEW"))
        assert isinstance(h.outcomes[req.request_id][-1], Accepted)
        placed.append(req)
        h.now += gap_ms
    return placed


def test_three_same_side_limits_rest_at_once_and_each_falls_back_on_its_own_for_its_own_remainder() -> None:
    h = _Parallel()
    a, b, c = _ladder(h, "59980", "59970", "59960")
    creates = h.creates()
    assert len(creates) == 3 and len({r.key for r in creates}) == 3
    assert {e.request.request_id for e in h.book.active()} == {a.request_id, b.request_id, c.request_id}
    # each its own timer, from when it was placed
    assert [h.timers[f"plan:{r.request_id}"] for r in (a, b, c)] == [T0 + 10_000, T0 + 12_000, T0 + 14_000]

    # b fills 0.004 (a report for its order only), c 0.001
    for req, qty, trade_id in ((b, "0.004", 7001), (c, "0.001", 7002)):
        cid = next(r.key for r in creates if r.params["price"] == str(req.price))
        h.run(h.book.on_report(_report(cid, qty, trade_id, str(req.price)), h.now))
    assert h.legs_filled(a.request_id) == 0
    assert h.legs_filled(b.request_id) == Decimal("0.004")
    assert h.legs_filled(c.request_id) == Decimal("0.001")

    h.fire(f"plan:{a.request_id}")  # a times out: a cancel of a's order only
    [cancel] = [r for r in h.sent if r.op is Op.CANCEL_ORDER]
    assert cancel.params["origClientOrderId"] == creates[0].key
    h.reply(cancel, order_json(cancel, "CANCELED", cancel=True))
    fallback_a = h.creates()[-1]
    assert fallback_a.params["type"] == "MARKET" and fallback_a.params["quantity"] == "0.01"
    assert fallback_a.key == creates[0].key[:-2] + "-f1"
    h.reply(fallback_a, order_json(fallback_a, "FILLED", "0.01", [("60010", "0.01")]))
    [trade_a] = h.trades()
    assert trade_a.request_id == a.request_id and trade_a.filled == Decimal("0.01") == h.legs_filled(a.request_id)
    assert {e.request.request_id for e in h.book.active()} == {b.request_id, c.request_id}  # still resting, untouched
    assert f"plan:{b.request_id}" in h.timers and f"plan:{c.request_id}" in h.timers

    h.fire(f"plan:{b.request_id}")  # b times out with 0.004 filled: its fallback is for its own 0.006
    cancel_b = h.sent[-1]
    assert cancel_b.op is Op.CANCEL_ORDER and cancel_b.params["origClientOrderId"] == creates[1].key
    h.reply(cancel_b, order_json(cancel_b, "CANCELED", "0.004", cancel=True))
    fallback_b = h.creates()[-1]
    assert fallback_b.params["quantity"] == "0.006" and fallback_b.key.startswith(creates[1].key[:-2])
    h.reply(fallback_b, order_json(fallback_b, "FILLED", "0.006", [("60010", "0.006")]))

    h.fire(f"plan:{c.request_id}")
    cancel_c = h.sent[-1]
    h.reply(cancel_c, order_json(cancel_c, "CANCELED", "0.001", cancel=True))
    fallback_c = h.creates()[-1]
    assert fallback_c.params["quantity"] == "0.009"
    h.reply(fallback_c, order_json(fallback_c, "FILLED", "0.009", [("60010", "0.009")]))

    trades = {t.request_id: t for t in h.trades()}
    assert set(trades) == {a.request_id, b.request_id, c.request_id} and len(h.trades()) == 3
    for req in (a, b, c):
        trade = trades[req.request_id]
        assert trade.status is TradeStatus.FILLED and trade.filled == req.amount == h.legs_filled(req.request_id)
    assert not h.book.active() and [r.op for r in h.sent].count(Op.CREATE_ORDER) == 6


def test_canceling_one_request_leaves_the_others_resting() -> None:
    h = _Parallel()
    a, b, c = _ladder(h, "59980", "59970", "59960")
    creates = h.creates()
    commands, outcome = h.book.cancel_request(b.request_id, h.now)
    h.run(commands)
    assert outcome is not None and outcome.client_order_ids == (creates[1].key,)
    cancels = [r for r in h.sent if r.op is Op.CANCEL_ORDER]
    assert [r.params["origClientOrderId"] for r in cancels] == [creates[1].key]
    h.reply(cancels[0], order_json(cancels[0], "CANCELED", cancel=True))
    [trade] = h.trades()
    assert trade.request_id == b.request_id and trade.status is TradeStatus.CANCELED
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 3  # no fallback for b
    assert {e.request.request_id for e in h.book.active()} == {a.request_id, c.request_id}
    assert f"plan:{b.request_id}" not in h.timers
    assert {f"plan:{a.request_id}", f"plan:{c.request_id}"} <= set(h.timers)


def test_the_opposite_side_is_refused_while_any_request_of_the_pair_executes_and_named() -> None:
    h = _Parallel()
    first = _ladder(h, "59980")[0]
    h.place(request(price="59970"))  # same side: starts, not acknowledged yet
    sell = request(side=Side.SELL, price="60100")
    refusal = h.place(sell)
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.CONFLICT, refusal
    assert refusal.details == {"request_id": first.request_id, "side": "buy", "cause": "opposite_side"}
    assert f"its buy request {first.request_id} is still executing" in refusal.message
    assert "self-trade" in refusal.message and 'conflict_policy = "parallel"' in refusal.message
    assert [r.params["side"] for r in h.creates()] == ["BUY", "BUY"]
    assert sell.request_id not in {e.request.request_id for e in h.book.active()}


def test_a_sell_starts_once_every_buy_of_the_pair_is_done() -> None:
    h = _Parallel()
    [buy] = _ladder(h, "59980")
    h.reply(h.creates()[-1], order_json(h.creates()[-1], "FILLED", "0.01", [("59980", "0.01")]))
    assert not h.book.active()
    sell = request(side=Side.SELL, price="60100")
    h.place(sell)
    assert h.creates()[-1].params["side"] == "SELL" and buy.request_id != sell.request_id


def test_an_open_order_of_the_engine_whose_request_is_over_refuses_the_other_side() -> None:
    # Restored after a restart: the sell's request was summed up, its order still rests. A buy could cross it.
    h = _Parallel()
    when = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    cid = ClientOrderId("bx-aaaaaaaaaaaaaaaaaaaaaaaaaa-p")
    order = Order(
        client_order_id=cid, exchange_order_id=91, request_id="r-over", pair=PAIR, side=Side.SELL,
        order_type=OrderType.LIMIT, status=OrderStatus.OPEN, price=Decimal(60100), amount=Decimal("0.01"),
        role=OrderRole.PRIMARY, created_at=when, updated_at=when,
    )  # fmt: skip
    assert h.book.restore([], [order], {}, h.now) == 0
    refusal = h.place(request(price="59980"))
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.CONFLICT, refusal
    assert refusal.details == {"request_id": "r-over", "side": "sell", "client_order_id": cid,
                               "cause": "opposite_side"}  # fmt: skip
    assert h.creates() == []
    assert not isinstance(h.place(request(side=Side.SELL, price="60200")), Refusal)  # the same side goes


def test_the_open_orders_limit_counts_every_open_order_of_the_pair() -> None:
    h = _Parallel(risk=DefaultRiskManager(max_open_orders_per_pair=3))
    _ladder(h, "59980", "59970", "59960")
    refusal = h.place(request(price="59950"))
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.RISK_LIMIT, refusal
    assert refusal.details["open_orders"] == "3" and refusal.details["max_open_orders_per_pair"] == "3"
    assert len(h.creates()) == 3


def test_a_request_waiting_to_send_its_fallback_again_keeps_its_place_under_the_open_orders_limit() -> None:
    h = _Parallel(risk=DefaultRiskManager(max_open_orders_per_pair=2), max_create_resends=0)
    a, _b = _ladder(h, "59980", "59970")
    h.fire(f"plan:{a.request_id}")
    h.reply(h.sent[-1], order_json(h.sent[-1], "CANCELED", cancel=True))
    fallback = h.creates()[-1]
    h.reply(fallback, error=RetryLater("too many requests", retry_after_s=5, operation="create_order", code=-1015))
    assert len(h.book.open_legs()) == 1  # only b's order is open: a waits to send its remainder again
    refusal = h.place(request(price="59950"))
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.RISK_LIMIT, refusal
    assert refusal.details["open_orders"] == "2"


def test_a_volatility_spike_cuts_every_resting_limit_of_the_pair_short() -> None:
    h = _Parallel(volatility_trigger=Decimal("0.02"))
    _ladder(h, "59980", "59970", "59960")
    creates = [r.key for r in h.creates()]
    h.run(h.book.on_price(Decimal("58700"), Decimal("58800"), h.now))  # down 2 %, and back within the bound
    h.run(h.book.on_price(Decimal("60000"), Decimal("60100"), h.now))
    assert sorted(r.params["origClientOrderId"] for r in h.sent if r.op is Op.CANCEL_ORDER) == sorted(creates)


def test_the_shutdown_cancels_every_request_of_the_pair_and_counts_each_order_once() -> None:
    h = _Parallel()
    placed = _ladder(h, "59980", "59970", "59960")
    assert sorted(h.book.shutdown_requests()) == sorted(r.request_id for r in placed)
    for request_id in h.book.shutdown_requests():
        h.run(h.book.cancel_at_shutdown(request_id, h.now))
    cancels = [r for r in h.sent if r.op is Op.CANCEL_ORDER]
    assert sorted(r.key for r in cancels) == sorted(r.key for r in h.creates())
    for cancel in cancels[:2]:
        h.reply(cancel, order_json(cancel, "CANCELED", cancel=True))
    tally = h.book.shutdown_tally()
    assert (tally.canceled, tally.open, tally.ended_otherwise, tally.withdrawn) == (2, 1, 0, 0)
    assert len(h.trades()) == 2 and [r.op for r in h.sent].count(Op.CREATE_ORDER) == 3  # no fallback


def test_restate_after_a_crash_stores_every_executing_requests_records_again() -> None:
    h = _Parallel()
    a, b = _ladder(h, "59980", "59970")
    h.fire(f"plan:{a.request_id}")
    h.reply(h.sent[-1], order_json(h.sent[-1], "CANCELED", cancel=True))
    h.reply(h.creates()[-1], order_json(h.creates()[-1], "FILLED", "0.01", [("60010", "0.01")]))
    restated = [c.item for c in h.book.restate(h.now) if isinstance(c, Persist)]
    orders = {o.client_order_id: o.request_id for o in restated if isinstance(o, Order)}
    assert sorted(orders.values()) == sorted([a.request_id, a.request_id, b.request_id])
    assert [t.request_id for t in restated if isinstance(t, Trade)] == [a.request_id]  # b still rests


def test_refuse_still_refuses_a_second_request_of_the_same_side() -> None:
    h = Harness()
    first = request(price="59980")
    h.place(first)
    refusal = h.place(request(price="59970"))
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.CONFLICT
    assert refusal.details == {"request_id": first.request_id, "side": "buy"}
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1


def test_queue_still_queues_a_second_request_of_the_same_side() -> None:
    h = Harness(conflict_policy="queue")
    first, second = request(price="59980"), request(price="59970")
    h.place(first)
    assert h.place(second) is None
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1
    h.answer(order_json(h.sent[-1], "FILLED", "0.01", [("59980", "0.01")]))
    assert h.sent[-1].op is Op.CREATE_ORDER and h.sent[-1].params["price"] == "59970"


def _report(cid: str, qty: str, trade_id: int, price: str) -> Any:
    """A stream report of a trade of `qty` on the resting buy `cid`."""
    frame = {
        "e": "executionReport", "E": T0 + 50, "s": "BTCUSDT", "c": cid, "S": "BUY", "o": "LIMIT", "f": "GTC",
        "q": "0.01", "p": price, "P": "0", "F": "0", "g": -1, "C": "", "x": "TRADE", "X": "PARTIALLY_FILLED",
        "r": "NONE", "i": abs(hash(cid)) % 10**9, "l": qty, "z": qty, "L": price, "n": "0", "N": "BNB", "T": T0 + 50,
        "t": trade_id, "I": 1, "w": True, "m": True, "M": True, "O": T0, "Z": str(Decimal(qty) * Decimal(price)),
        "Y": str(Decimal(qty) * Decimal(price)), "Q": "0", "W": T0, "V": "EXPIRE_MAKER",
    }  # fmt: skip
    return parse_user_data(orjson.dumps(frame))
