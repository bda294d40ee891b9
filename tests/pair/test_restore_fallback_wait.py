"""A restart while a plan waits to re-send its fallback (FALLBACK_WAIT): the wait resumes, it is not a rejection.

The fallback's create failed with a retry-later error (nothing executed) after its re-sends under the same id;
the plan waits for its `fallback_retry` timer, then sends the remainder as a new order. What the engine stored is
all a new engine has: it must resume the wait, with the time left, and still end a request whose fallback the
exchange definitely rejected as `fallback_rejected`.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from db import request_merged
from engine.domain import Order, OrderStatus, RequestRecord, Trade, TradeStatus
from engine.exchange import ExchangeError, InsufficientBalance, OrderNotFound, RetryLater
from engine.execution import SlippageAction
from engine.gateway import GatewayRequest, Op
from tests.pair._book_helpers import T0, Harness, order_json, request

_FAILED_AT = T0 + 10_000
"""When the fallback's last re-send failed (the limit's 10 s ran out at T0 + 10 s)."""


def _creates(h: Harness) -> list[GatewayRequest]:
    return [r for r in h.sent if r.op is Op.CREATE_ORDER]


def _harness(**execution: Any) -> Harness:
    """The pure book with a 10 s limit and `execution` (ExecutionConfig fields) as its plan's policy."""
    h = Harness(limit_timeout_ms=10_000)
    h.book.settings = replace(h.book.settings, execution=replace(h.book.settings.execution, **execution))
    return h


def _fallback_fails(error: ExchangeError, **execution: Any) -> tuple[Harness, Any]:
    """A limit that times out unfilled, and a market fallback whose create fails with `error` every time."""
    h = _harness(**execution)
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    sent = len(h.sent)
    h.answer(error=error)
    while len(h.sent) > sent and h.sent[-1].op is Op.CREATE_ORDER:  # re-sent under the same id (max_create_resends)
        sent = len(h.sent)
        h.answer(error=error)
    return h, req


def _restart(h: Harness, request_id: str, now_ms: int, **execution: Any) -> Harness:
    """A new engine at `now_ms` with what `h` stored of the request (its rows as the database keeps them)."""
    record = None
    for told in (r for r in h.stored if isinstance(r, RequestRecord) and r.request.request_id == request_id):
        record = request_merged(record, told)
    assert record is not None
    orders = {o.client_order_id: o for o in h.stored if isinstance(o, Order) and o.request_id == request_id}
    again = _harness(**execution)
    again.now = now_ms
    again.book.on_price(Decimal("59990"), Decimal("60010"), now_ms)
    assert again.book.restore([record], list(orders.values()), {}, now_ms) == 1
    again.run(again.book.resume(now_ms))
    for fetch in [r for r in again.sent if r.op is Op.FETCH_ORDER]:  # the failed fallback was never created
        again.answer(error=OrderNotFound("Order does not exist.", code=-2013), index=again.sent.index(fetch))
    return again


def test_a_restart_during_the_wait_resumes_it_with_the_time_left_then_sends_the_remainder() -> None:
    busy = RetryLater("Service shutting down.", code=-1016, operation="create_order", retry_after_s=30)
    h, req = _fallback_fails(busy)
    [f1] = {c.params["newClientOrderId"] for c in _creates(h)[1:]}
    assert not h.trades() and h.timers[f"plan:{req.request_id}"] == _FAILED_AT + 30_000  # waiting, Retry-After

    again = _restart(h, req.request_id, _FAILED_AT + 12_000)
    assert not again.trades(), f"ended after the restart: {[t.note for t in again.trades()]}"
    assert not _creates(again)
    assert again.timers[f"plan:{req.request_id}"] == _FAILED_AT + 30_000  # the 18 s left of the wait
    again.fire(f"plan:{req.request_id}")
    [f2] = _creates(again)
    assert f2.params["newClientOrderId"] == f1.replace("-f1", "-f2") and f2.params["type"] == "MARKET"
    assert f2.params["quantity"] == "0.01"
    again.answer(order_json(f2, "FILLED", "0.01", [("60010", "0.01")]))
    [trade] = again.trades()
    assert trade.status is TradeStatus.FILLED and trade.filled == Decimal("0.01")


def test_a_wait_that_ran_out_while_the_engine_was_down_is_retried_at_once() -> None:
    h, req = _fallback_fails(RetryLater("Service shutting down.", code=-1016, operation="create_order"))
    again = _restart(h, req.request_id, _FAILED_AT + 600_000)
    assert not again.trades()
    assert again.timers[f"plan:{req.request_id}"] == _FAILED_AT + 600_000  # due now
    again.fire(f"plan:{req.request_id}")
    [f2] = _creates(again)
    assert f2.params["newClientOrderId"].endswith("-f2") and f2.params["quantity"] == "0.01"


def test_a_fallback_the_exchange_rejected_still_ends_fallback_rejected_after_a_restart() -> None:
    h, req = _fallback_fails(InsufficientBalance("Account has insufficient balance.", code=-2010))
    [trade] = h.trades()  # the plan ended before the restart: nothing to resume
    assert "fallback_rejected" in trade.note
    # Had the trade not been stored yet, the restored request ends the same way (the rejection is no retry).
    h.stored = [s for s in h.stored if not isinstance(s, Trade)]
    again = _restart(h, req.request_id, _FAILED_AT + 2_000)
    assert not _creates(again)
    [after] = again.trades()
    assert after.status is TradeStatus.FAILED and "fallback_rejected" in after.note


def test_the_last_allowed_attempt_failing_ends_the_request_and_nothing_is_resumed() -> None:
    # max_fallback_attempts = 1: the one fallback failed retry-later, the plan had no attempt left to wait for.
    h, req = _fallback_fails(RetryLater("busy", code=-1016, operation="create_order"), max_fallback_attempts=1)
    [trade] = h.trades()
    assert "fallback_rejected" in trade.note
    h.stored = [s for s in h.stored if not isinstance(s, Trade)]
    again = _restart(h, req.request_id, _FAILED_AT + 2_000, max_fallback_attempts=1)
    assert not _creates(again)
    [after] = again.trades()
    assert "fallback_rejected" in after.note


def test_the_resumed_retry_is_judged_by_the_slippage_guard_on_the_price_of_now() -> None:
    h, req = _fallback_fails(RetryLater("busy", code=-1016, operation="create_order"),
                             slippage_action=SlippageAction.REFUSE)  # fmt: skip
    again = _restart(h, req.request_id, _FAILED_AT + 2_000, slippage_action=SlippageAction.REFUSE)
    again.run(again.book.on_price(Decimal("61990"), Decimal("62000"), again.now))  # 3 % above the limit price
    again.fire(f"plan:{req.request_id}")
    assert not _creates(again)
    [trade] = again.trades()
    assert trade.remainder == Decimal("0.01") and "slippage_refused" in trade.note


def test_the_wait_of_an_earlier_attempt_resumes_nothing_once_a_later_one_was_rejected() -> None:
    # f1 failed retry-later (its wait stored), f2 went out when the wait ended and the exchange rejected it: the
    # plan ended. Had the engine died before the trade was stored (waiting for fills, say), the stored wait is
    # f1's, not the last order's: the request still ends fallback_rejected, and no f3 is sent.
    h, req = _fallback_fails(RetryLater("busy", code=-1016, operation="create_order"))
    h.fire(f"plan:{req.request_id}")
    h.answer(error=InsufficientBalance("Account has insufficient balance.", code=-2010))
    [trade] = h.trades()
    assert "fallback_rejected" in trade.note and len({c.key for c in _creates(h)}) == 3
    h.stored = [s for s in h.stored if not isinstance(s, Trade)]
    again = _restart(h, req.request_id, h.now + 1_000)
    assert not _creates(again)
    [after] = again.trades()
    assert after.status is TradeStatus.FAILED and "fallback_rejected" in after.note
    orders = {o.client_order_id: o.status for o in h.stored if isinstance(o, Order)}
    assert list(orders.values())[1:] == [OrderStatus.REJECTED, OrderStatus.REJECTED]
