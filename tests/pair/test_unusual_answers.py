"""Unusual exchange answers: a cancel answer names the order by origClientOrderId, and an impossible number or
malformed fills list is an unreadable answer, not a crash with half of it applied (found by fuzzing the wire)."""

from __future__ import annotations

import pytest

from engine.api import EventKind
from engine.domain import Order
from engine.gateway import GatewayResult
from tests.pair._book_helpers import Harness, order_json, request
from tests.pair._wire_frames import placed, report


def test_a_cancel_answer_by_order_id_does_not_record_the_cancel_requests_id_as_the_orders() -> None:
    # Binance's DELETE /api/v3/order answer: `clientOrderId` is the CANCEL request's id (auto-generated when the
    # cancel sends none, as the engine's never does); the order's own id is `origClientOrderId` (binance-spot.md §1.4).
    h = Harness(limit_timeout_ms=600_000)
    req, cid, oid = placed(h)
    # amended in the Binance UI: the exchange now knows the order as "ui-1"; the engine follows it by order id
    h.run(h.book.on_report(report(c="ui-1", C=cid, x="REPLACED", X="NEW", oid=oid, q="0.008"), h.now))
    commands, _ = h.book.cancel_request(req.request_id, h.now)
    h.run(commands)
    cancel = h.sent[-1]
    assert cancel.params.get("orderId") == str(oid)
    answer = order_json(cancel, "CANCELED", cancel=True)
    answer.update(orderId=oid, origClientOrderId="ui-1", clientOrderId="k6kJ4mdFW2Lc0hUYEbBC3x", origQty="0.008")
    before = len(h.stored)
    h.answer(answer)
    recorded = {o.exchange_client_order_id for o in h.stored[before:] if isinstance(o, Order)}
    assert recorded == {"ui-1"}, f"the order recorded as known by {recorded} at the exchange"


def test_a_cancel_answer_after_a_missed_lookup_does_not_invent_an_exchange_client_id() -> None:
    # Never amended: a status lookup by client id missed once (REST lag), so the cancel goes by order id.
    from engine.exchange import OrderNotFound
    from engine.pair._params import fetch_request

    h = Harness(limit_timeout_ms=600_000)
    req, cid, oid = placed(h)
    leg = h.book._legs[cid]
    lookup = fetch_request(h.book.symbol, h.book.pair, cid)
    h.run(h.book.on_result(GatewayResult(lookup, error=OrderNotFound("Order does not exist.", code=-2013)), h.now))
    assert leg.by_order_id
    commands, _ = h.book.cancel_request(req.request_id, h.now)
    h.run(commands)
    cancel = h.sent[-1]
    answer = order_json(cancel, "CANCELED", cancel=True)
    answer.update(orderId=oid, origClientOrderId=cid, clientOrderId="k6kJ4mdFW2Lc0hUYEbBC3x")
    before = len(h.stored)
    h.answer(answer)
    recorded = {o.exchange_client_order_id for o in h.stored[before:] if isinstance(o, Order)}
    assert recorded <= {None}, f"the order recorded as known by {recorded} at the exchange"


@pytest.mark.parametrize(("field", "value"), [("price", "NaN"), ("commission", "NaN"), ("price", "Infinity")])
def test_an_impossible_number_in_a_create_answer_is_an_unreadable_answer_not_a_crash(field: str, value: str) -> None:
    h = Harness()
    h.place(request("0.01", None))  # market
    create = h.sent[-1]
    data = order_json(create, "FILLED", executed="0.01", fills=[("60000", "0.01")])
    data["fills"][0][field] = value
    h.answer(data)  # raised InvalidOperation / ValidationError out of on_result: the pair actor crashed
    _unreadable_and_nothing_applied(h)


def _unreadable_and_nothing_applied(h: Harness) -> None:
    assert any(e.kind is EventKind.ERROR and "WireFormatError" in (e.message or "") for e in h.events), h.events
    orders = [o for o in h.stored if isinstance(o, Order)]
    assert orders and orders[-1].filled == 0 and not orders[-1].fees  # no fill of it was taken


@pytest.mark.parametrize("fills", [["x"], 5])
def test_a_malformed_fills_list_in_a_create_answer_is_an_unreadable_answer_not_a_crash(fills: object) -> None:
    h = Harness()
    h.place(request("0.01", None))
    create = h.sent[-1]
    data = order_json(create, "FILLED", executed="0.01", fills=[("60000", "0.01")])
    data["fills"] = fills
    h.answer(data)  # raised AttributeError / TypeError out of on_result
    _unreadable_and_nothing_applied(h)
