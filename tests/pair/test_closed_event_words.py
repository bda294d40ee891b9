"""A `canceled` event says what happened to the order in its author's words — who or what ended it and how much
of it filled — not the state machine's transition ("pending_cancel → canceled")."""

from __future__ import annotations

from engine.api import EventKind
from engine.domain import FallbackKind, OrderType
from engine.execution import SlippageAction
from tests.pair._book_helpers import Harness, order_json, request
from tests.pair.test_recover import _report


def _closed(h: Harness) -> list[str]:
    return [e.message for e in h.events if e.kind is EventKind.CANCELED]


def test_a_limit_canceled_at_its_timeout_says_canceled_and_how_much_filled() -> None:
    h = Harness(fallback=FallbackKind.NONE)
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "PARTIALLY_FILLED", "0.00400000", [("60000", "0.00400000")]))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", "0.00400000", cancel=True))
    assert _closed(h) == ["canceled (filled 0.004 of 0.01)"]
    h = Harness(fallback=FallbackKind.NONE)
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    assert _closed(h) == ["canceled (nothing filled of 0.01)"]


def test_a_market_order_the_exchange_expired_says_so() -> None:
    h = Harness()
    h.place(request(amount="0.01", price=None, order_type=OrderType.MARKET))
    h.answer(order_json(h.sent[-1], "EXPIRED", "0.00400000", [("60010", "0.00400000")]))
    assert _closed(h) == ["expired by the exchange: what did not fill at once (filled 0.004 of 0.01)"]


def test_an_ioc_at_the_bound_the_exchange_expired_says_so() -> None:
    h = Harness(slippage_action=SlippageAction.CAP)
    h.place(request(amount="0.01", price="60000", order_type=OrderType.MARKET))
    h.answer(order_json(h.sent[-1], "EXPIRED"))
    assert _closed(h) == ["expired by the exchange: what did not fill at once (nothing filled of 0.01)"]


def test_a_limit_expired_by_self_trade_prevention_says_so() -> None:
    h = Harness()
    req = request(amount="0.01")
    h.place(req)
    create = h.sent[-1]
    h.answer(order_json(create, "NEW"))
    cid = create.params["newClientOrderId"]
    order_id = abs(hash(cid)) % 10**9  # as `order_json` numbers it
    prevented = _report(cid, x="EXPIRED", status="EXPIRED_IN_MATCH", last="0", cum="0", trade_id=0, order_id=order_id)
    h.run(h.book.on_report(prevented, h.now))
    assert _closed(h) == [
        "expired in match: self-trade prevention, it met another order of this account (nothing filled of 0.01)"
    ]
    assert not any("→" in m for m in _closed(h))
