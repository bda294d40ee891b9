"""A cancel answer that cannot be read applies nothing: a garbled quantity in it is no amend (review)."""

from __future__ import annotations

from decimal import Decimal

from engine.gateway import Op
from tests.pair._book_helpers import Harness, order_json, request


def test_an_unreadable_cancel_answer_applies_nothing() -> None:
    h = Harness()
    req = request(limit_timeout_s=Decimal(10))
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    assert h.sent[-1].op is Op.CANCEL_ORDER
    data = order_json(h.sent[-1], "CANCELED", cancel=True)
    data["origQty"] = "0.005"
    data["orderId"] = "garbled"  # unreadable: parse_order refuses it
    h.answer(data)
    leg = h.book.leg(h.sent[0].params["newClientOrderId"])
    assert leg is not None
    assert leg.exchange_qty is None, f"amend applied from an unreadable answer: exchange_qty={leg.exchange_qty}"
