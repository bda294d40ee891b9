"""`PairBook.restate` after a pair actor crash stores a fallback's wait (FALLBACK_WAIT) again.

The crash hit the very message in which the fallback's create failed with a retry-later error: the order's
rejected row and the request's `fallback_retry` died with that message. `restate` stores what the book knows
again; should the process then die before the retry timer, a restart must resume the wait, not end the request
`fallback_rejected` with its remainder never sent.
"""

from __future__ import annotations

from decimal import Decimal

from db import request_merged
from engine.domain import Order, OrderStatus, RequestRecord, TradeStatus
from engine.exchange import OrderNotFound, RetryLater
from engine.gateway import GatewayResult, Op
from engine.pair import Persist, Send, WriteAhead
from tests.pair._book_helpers import T0, Harness, order_json, request

_FAILED_AT = T0 + 10_000
_BUSY = RetryLater("Service shutting down.", code=-1016, operation="create_order", retry_after_s=30)


def _harness() -> Harness:
    return Harness(limit_timeout_ms=10_000)


def _is_create(command: WriteAhead | Send) -> bool:
    request = command.send if isinstance(command, WriteAhead) else command.request
    return request.op is Op.CREATE_ORDER


def _crash_on_the_failed_fallback() -> tuple[Harness, str]:
    """A limit times out unfilled; its market fallback fails retry-later, and the actor dies in the last failure's
    message (its commands never carried out); the restarted actor runs the book's `restate`."""
    h = _harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    while True:
        commands = h.book.on_result(GatewayResult(h.sent[-1], error=_BUSY), h.now)
        if not any(isinstance(c, WriteAhead | Send) and _is_create(c) for c in commands):
            break  # the last failure: the plan waits now; this message's commands die with the actor
        h.run(commands)  # a re-send under the same id (max_create_resends)
    assert any(isinstance(c, Persist) and isinstance(c.item, RequestRecord) and c.item.fallback_retry
               for c in commands), "the plan should wait to re-send its fallback"  # fmt: skip
    assert not any(isinstance(s, RequestRecord) and s.fallback_retry for s in h.stored)
    h.run(h.book.restate(h.now))
    return h, req.request_id


def test_restate_stores_the_fallbacks_wait_again() -> None:
    h, request_id = _crash_on_the_failed_fallback()
    [wait] = [s for s in h.stored if isinstance(s, RequestRecord) and s.fallback_retry is not None]
    orders = {o.client_order_id: o for o in h.stored if isinstance(o, Order)}
    assert wait.request.request_id == request_id and wait.fallback_retry is not None
    assert orders[wait.fallback_retry].status is OrderStatus.REJECTED  # the failed fallback, stored beside it
    assert wait.fallback_retry_at is not None
    assert int(wait.fallback_retry_at.timestamp() * 1000) == _FAILED_AT + 30_000  # Retry-After: 30 s


def test_a_restart_after_the_restated_crash_resumes_the_wait() -> None:
    h, request_id = _crash_on_the_failed_fallback()
    record = None
    for told in (r for r in h.stored if isinstance(r, RequestRecord) and r.request.request_id == request_id):
        record = request_merged(record, told)
    assert record is not None
    orders = {o.client_order_id: o for o in h.stored if isinstance(o, Order) and o.request_id == request_id}
    again = _harness()
    again.now = _FAILED_AT + 12_000
    again.book.on_price(Decimal("59990"), Decimal("60010"), again.now)
    assert again.book.restore([record], list(orders.values()), {}, again.now) == 1
    again.run(again.book.resume(again.now))
    for fetch in [r for r in again.sent if r.op is Op.FETCH_ORDER]:  # the failed fallback was never created
        again.answer(error=OrderNotFound("Order does not exist.", code=-2013), index=again.sent.index(fetch))
    assert not again.trades(), f"ended after the restart: {[t.note for t in again.trades()]}"
    assert again.timers[f"plan:{request_id}"] == _FAILED_AT + 30_000
    again.fire(f"plan:{request_id}")
    [resent] = [r for r in again.sent if r.op is Op.CREATE_ORDER]
    assert resent.params["type"] == "MARKET" and resent.params["quantity"] == "0.01"
    again.answer(order_json(resent, "FILLED", "0.01", [("60010", "0.01")]))
    [trade] = again.trades()
    assert trade.status is TradeStatus.FILLED
