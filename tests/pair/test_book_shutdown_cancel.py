"""The shutdown's cancel (`on_shutdown = cancel`) in the pure book: stored and noted as the shutdown's, not the
caller's, and still a cancel after a restart (no fallback), as a caller's is."""

from __future__ import annotations

from engine.domain import Order, OrderStatus, RequestRecord, TradeStatus
from engine.exchange import StopTrading
from engine.gateway import Op
from engine.pair import CancelAhead
from tests.pair._book_helpers import T0, Harness, order_json, request

_SHUTDOWN = "canceled at shutdown (on_shutdown = cancel)"


def test_the_shutdowns_cancel_is_stored_and_noted_as_the_shutdowns() -> None:
    h = Harness(limit_timeout_ms=10_000)
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    commands = h.book.cancel_at_shutdown(req.request_id, h.now)
    [ahead] = [c for c in commands if isinstance(c, CancelAhead)]
    assert ahead.record.canceled == _SHUTDOWN  # stored before the cancel leaves, as a caller's cancel is
    h.run(commands)
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    [trade] = h.trades()
    assert trade.status is TradeStatus.CANCELED and _SHUTDOWN in trade.note and "caller" not in trade.note
    assert [r.canceled for r in h.stored if isinstance(r, RequestRecord) and r.canceled] == [_SHUTDOWN]


def test_a_shutdown_cancel_that_failed_resumes_no_fallback_after_a_restart() -> None:
    # The cancel is refused and the engine stops: back after the limit's deadline, the limit is canceled, and no
    # market order follows for what the shutdown canceled.
    h = Harness(limit_timeout_ms=10_000)
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.run(h.book.cancel_at_shutdown(req.request_id, h.now))
    h.answer(error=StopTrading("Invalid API-key, IP, or permissions for action.", code=-2015))
    [record] = [r for r in h.stored if isinstance(r, RequestRecord) and r.canceled]
    orders = {o.client_order_id: o for o in h.stored if isinstance(o, Order)}
    assert [o.status for o in orders.values()] == [OrderStatus.OPEN]  # the refused cancel set it back

    again = Harness(limit_timeout_ms=10_000)
    again.now = T0 + 60_000
    assert again.book.restore([record], list(orders.values()), {}, again.now) == 1
    again.run(again.book.resume(again.now))
    [fetch] = [r for r in again.sent if r.op is Op.FETCH_ORDER]
    again.answer(order_json(fetch, "NEW"), index=again.sent.index(fetch))
    [cancel] = [r for r in again.sent if r.op is Op.CANCEL_ORDER]
    again.answer(order_json(cancel, "CANCELED", cancel=True), index=again.sent.index(cancel))
    assert not [r for r in again.sent if r.op is Op.CREATE_ORDER]  # no fallback
    [trade] = again.trades()
    assert trade.status is TradeStatus.CANCELED and f"{_SHUTDOWN} (before a restart)" in trade.note, trade.note
