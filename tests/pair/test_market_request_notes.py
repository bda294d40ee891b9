"""What a market request's trade note and events say when its own order fails: a market request has no limit and
so no fallback, and nothing it is told may name one (the plan counts its order as the fallback attempt only so
that a restart sends no second one)."""

from __future__ import annotations

from decimal import Decimal

from engine.api import EventKind
from engine.domain import OrderType, TradeStatus
from engine.exchange import InsufficientBalance, RateLimited
from engine.gateway import Op
from tests.pair._book_helpers import Harness, order_json, request


def _market(h: Harness) -> None:
    h.place(request(amount="0.01", price=None, order_type=OrderType.MARKET))
    assert h.sent[-1].op is Op.CREATE_ORDER and h.sent[-1].params["type"] == "MARKET"


def test_a_rejected_market_requests_note_names_its_own_order_not_a_fallback() -> None:
    h = Harness()
    _market(h)
    h.answer(error=InsufficientBalance("insufficient", operation="create_order", code=-2010))
    [trade] = h.trades()
    assert trade.status is TradeStatus.FAILED and trade.remainder == Decimal("0.01")
    assert trade.note.startswith("market_rejected: InsufficientBalance")
    assert "fallback" not in trade.note


def test_an_expired_market_requests_note_names_its_own_order_not_a_fallback() -> None:
    h = Harness()
    _market(h)
    h.answer(order_json(h.sent[-1], "EXPIRED", "0.004", [("60010", "0.004")]))
    [trade] = h.trades()
    assert trade.status is TradeStatus.PARTIAL and trade.remainder == Decimal("0.006")
    assert trade.note == "market_incomplete: market order expired with a remainder"


def test_a_market_request_sent_again_after_retry_later_is_told_as_sent_again_not_as_a_fallback() -> None:
    h = Harness(max_create_resends=0)  # the retry-later reaches the plan: the remainder goes as a new order
    _market(h)
    h.answer(error=RateLimited("Too many new orders", code=-1015, retry_after_s=1, operation="create_order"))
    [key] = [k for k in h.timers if k.startswith("plan:")]
    h.fire(key)
    again = h.sent[-1]
    assert again.op is Op.CREATE_ORDER and again.params["type"] == "MARKET"
    h.answer(order_json(again, "NEW"))
    messages = [e.message for e in h.events if e.kind in (EventKind.FALLBACK, EventKind.ACCEPTED)]
    assert messages == ["sent again as a new order (market)", "order sent again accepted"]
    assert not any("fallback" in m for m in messages)


def test_a_limit_requests_rejected_fallback_still_says_fallback_rejected() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    h.answer(error=InsufficientBalance("insufficient", operation="create_order", code=-2010))
    [trade] = h.trades()
    assert trade.note.startswith("limit timeout; fallback market; fallback_rejected: InsufficientBalance")
