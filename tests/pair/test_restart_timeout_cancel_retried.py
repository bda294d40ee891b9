"""A restart past a limit's deadline: its own timeout cancel, answered -2011 after the gateway retried it (the first
answer lost), then found canceled, still gets the fallback (a rule that skipped it was tried and reverted)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.domain import Order, RequestRecord, Trade
from engine.exchange import OrderNotFound
from engine.gateway import GatewayResult, Op
from tests.pair._book_helpers import T0, Harness, order_json, request


def _stopped_with_a_resting_limit(**kw: Any) -> tuple[Any, list[RequestRecord], list[Order]]:
    first = Harness(**kw)
    req = request(limit_timeout_s=Decimal(10))
    first.place(req)
    first.answer(order_json(first.sent[-1], "NEW"))  # rests; the engine stops (on_shutdown = keep), rows stored
    records = [r for r in first.stored if isinstance(r, RequestRecord) and r.request.request_id == req.request_id]
    orders = list({o.client_order_id: o for o in first.stored if isinstance(o, Order)}.values())
    return first, records, orders


def _restarted(records: list[RequestRecord], orders: list[Order], **kw: Any) -> Harness:
    second = Harness(**kw)
    second.now = T0 + 20_000  # past the limit's 10 s deadline
    assert second.book.restore(records, orders, {}, second.now) == 1
    second.run(second.book.resume(second.now))
    return second


def _index(h: Harness, op: Op) -> int:
    return max(i for i, r in enumerate(h.sent) if r.op is op)


def _answer_at(h: Harness, i: int, data: Any = None, error: Any = None, attempts: int = 1) -> None:
    h.run(h.book.on_result(GatewayResult(h.sent[i], data=data, error=error, attempts=attempts), h.now))


def _canceled_row(first: Harness) -> dict[str, Any]:
    return order_json(first.sent[0], "CANCELED")


def _trade(h: Harness) -> Trade | None:
    trades = h.trades()
    return trades[-1] if trades else None


def test_normal_restart_own_cancel_whose_answer_was_lost_and_retried_by_the_gateway_gets_its_fallback() -> None:
    # A normal restart: the limit rested through the downtime, its deadline passed. The engine's timeout cancel
    # reaches Binance and cancels the order, but the response is lost (timeout / 502): the gateway retries the
    # idempotent cancel (should_retry) and the retry answers -2011. The book hears one result: OrderNotFound.
    first, records, orders = _stopped_with_a_resting_limit()
    second = _restarted(records, orders)
    cancel = _index(second, Op.CANCEL_ORDER)
    _answer_at(second, cancel, error=OrderNotFound("Unknown order sent.", code=-2011), attempts=2)
    lookup = _index(second, Op.FETCH_ORDER)
    _answer_at(second, lookup, data=_canceled_row(first))  # canceled by the engine's own cancel, nothing filled
    creates = [r for r in second.sent if r.op is Op.CREATE_ORDER]
    trade = _trade(second)
    assert creates, f"no fallback sent; trade: {trade and (trade.status, trade.note)}"


def test_normal_restart_partially_filled_row_gateway_retried_cancel_gets_its_fallback() -> None:
    from engine.domain import Fill

    first = Harness()
    req = request(limit_timeout_s=Decimal(10))
    first.place(req)
    first.answer(order_json(first.sent[-1], "PARTIALLY_FILLED", executed="0.004", fills=[("60000", "0.004")]))
    records = [r for r in first.stored if isinstance(r, RequestRecord) and r.request.request_id == req.request_id]
    orders = list({o.client_order_id: o for o in first.stored if isinstance(o, Order)}.values())
    fills = {orders[0].client_order_id: [f for f in first.stored if isinstance(f, Fill)]}
    second = Harness()
    second.now = T0 + 20_000
    assert second.book.restore(records, orders, fills, second.now) == 1
    second.run(second.book.resume(second.now))
    cancel = _index(second, Op.CANCEL_ORDER)
    _answer_at(second, cancel, error=OrderNotFound("Unknown order sent.", code=-2011), attempts=2)
    lookup = _index(second, Op.FETCH_ORDER)
    row = order_json(first.sent[0], "CANCELED", executed="0.004")
    row["cummulativeQuoteQty"] = "240"
    _answer_at(second, lookup, data=row)
    creates = [r for r in second.sent if r.op is Op.CREATE_ORDER]
    trade = _trade(second)
    assert creates, f"no fallback for the 0.006 remainder; trade: {trade and (trade.status, trade.filled, trade.note)}"
