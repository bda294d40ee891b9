"""A restored order whose lookup answer cannot be read is looked up again (review)."""

from __future__ import annotations

from decimal import Decimal

from engine.domain import Order, RequestRecord
from engine.gateway import Op
from tests.pair._book_helpers import T0, Harness, order_json, request


def test_a_restored_orders_unreadable_lookup_is_asked_again() -> None:
    first = Harness()
    req = request(limit_timeout_s=Decimal(3600))
    first.place(req)
    first.answer(order_json(first.sent[-1], "NEW"))
    records = [r for r in first.stored if isinstance(r, RequestRecord) and r.request.request_id == req.request_id]
    orders = list({o.client_order_id: o for o in first.stored if isinstance(o, Order)}.values())

    second = Harness()
    second.now = T0 + 20_000
    assert second.book.restore(records, orders, {}, second.now) == 1
    second.run(second.book.resume(second.now))
    second.scan([])  # not listed: looked up by itself
    assert second.sent[-1].op is Op.FETCH_ORDER
    garbled = order_json(first.sent[0], "FILLED", executed="0.01")
    garbled["orderId"] = "not-an-id"  # unreadable (WireFormatError in parse_order)
    second.answer(garbled)
    leg = second.book.leg(orders[0].client_order_id)
    assert leg is not None
    assert leg.resync_left > 0 or any(k.startswith("resync:") for k in second.timers), (
        f"no lookup asked again: resync_left={leg.resync_left}, timers={second.timers}"
    )
