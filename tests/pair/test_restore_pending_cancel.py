"""Found by a mutation audit (restored as canceled, the fallback left while the limit rested): an order whose cancel
was in flight at the crash (stored PENDING_CANCEL) is live until the exchange says otherwise: after the restart its
cancel is sent again, and no fallback leaves while it may still rest."""

from __future__ import annotations

from decimal import Decimal

from engine.domain import Order, OrderStatus, RequestRecord
from engine.gateway import Op
from tests.pair._book_helpers import T0, Harness, order_json, request


def test_a_cancel_in_flight_at_the_crash_is_sent_again_before_any_fallback() -> None:
    first = Harness()
    req = request(limit_timeout_s=Decimal(10))
    first.place(req)
    first.answer(order_json(first.sent[-1], "NEW"))
    first.fire(f"plan:{req.request_id}")  # the limit times out: its cancel leaves, no answer (the engine dies)
    assert first.sent[-1].op is Op.CANCEL_ORDER
    records = [r for r in first.stored if isinstance(r, RequestRecord) and r.request.request_id == req.request_id]
    orders = list({o.client_order_id: o for o in first.stored if isinstance(o, Order)}.values())
    assert [o.status for o in orders] == [OrderStatus.PENDING_CANCEL]

    second = Harness()
    second.now = T0 + 20_000
    assert second.book.restore(records, orders, {}, second.now) == 1
    second.run(second.book.resume(second.now))
    second.scan([order_json(first.sent[0], "NEW")])  # the start's scan: still resting at the exchange
    ops = [r.op for r in second.sent]
    assert Op.CANCEL_ORDER in ops, ops
    assert Op.CREATE_ORDER not in ops[: ops.index(Op.CANCEL_ORDER)], "a fallback left while the limit may rest"
    leg = second.book.leg(orders[0].client_order_id)
    assert leg is not None and not leg.terminal, leg.state.status


def test_an_intent_stored_before_the_crash_comes_back_submitted_and_is_looked_up() -> None:
    # Its create may have left: the outcome is unknown until looked up. Kept PENDING_SUBMIT, it dropped out of the
    # risk manager's open-order count and lost the guard against a second create (mutation audit).
    first = Harness()
    req = request(limit_timeout_s=Decimal(600))
    first.place(req)  # the write-ahead is stored; the create's answer never comes (the engine dies)
    records = [r for r in first.stored if isinstance(r, RequestRecord) and r.request.request_id == req.request_id]
    stored = list({o.client_order_id: o for o in first.stored if isinstance(o, Order)}.values())
    # stored so while its create waited (held back by a Retry-After, or concluded never created and to be sent again)
    orders = [o.model_copy(update={"status": OrderStatus.PENDING_SUBMIT}) for o in stored]

    second = Harness()
    second.now = T0 + 5_000
    assert second.book.restore(records, orders, {}, second.now) == 1
    leg = second.book.leg(orders[0].client_order_id)
    assert leg is not None and leg.state.status is OrderStatus.SUBMITTED
    second.run(second.book.resume(second.now))
    assert [r.op for r in second.sent][:1] == [Op.FETCH_ORDER]  # looked up, never created again blindly
