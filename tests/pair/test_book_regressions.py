"""Pair book regressions found in review: unknown create outcomes that gave up, and replayed keys mid-fallback."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.api import Accepted, EventKind, Refusal, RefusalReason
from engine.domain import FallbackKind, Order, OrderStatus, OrderType, RequestRecord, TimeInForce, TradeStatus
from engine.exchange import AuthFailed, FilterRejected, OrderNotFound, OutcomeUnknown, Resolution
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.pair import Alert
from engine.pair._params import fetch_request
from tests.pair._book_helpers import PAIR, T0, Harness, order_json, request

_PERCENT_PRICE = FilterRejected("Filter failure: PERCENT_PRICE_BY_SIDE", filter_name="PERCENT_PRICE_BY_SIDE")


def _exhaust_lookups(h: Harness, cid: str) -> None:
    """Every lookup of `cid` fails (an exchange outage) until its resolver gives up."""
    for _ in range(40):
        key = f"lookup:{cid}"
        if h.sent[-1].op is Op.FETCH_ORDER and h.sent[-1].key == cid:
            h.answer(error=OutcomeUnknown("502 bad gateway"))
        elif key in h.timers:
            h.fire(key)
        else:
            break
    leg = h.book.leg(cid)  # type: ignore[arg-type]
    assert leg is not None and leg.resolver is not None and leg.resolver.state is Resolution.GAVE_UP


def _gave_up_primary(h: Harness) -> tuple[GatewayRequest, object]:
    req = request()
    h.place(req)
    create = h.sent[-1]
    h.answer(error=OutcomeUnknown("timeout"))
    _exhaust_lookups(h, create.key)
    return create, req


def _reconcile(h: Harness) -> list[GatewayRequest]:
    """One reconciliation round's status queries, answered by the caller of this helper."""
    queries = [fetch_request(h.book.symbol, PAIR, o.client_order_id) for o in h.book.reconcilable()]
    h.sent.extend(queries)
    return queries


def test_a_fallback_whose_outcome_stays_unknown_still_answers_the_caller() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(error=_PERCENT_PRICE)  # the primary is refused: the fallback goes before any answer
    fallback = h.sent[-1]
    assert fallback.op is Op.CREATE_ORDER and fallback.key.endswith("-f1")
    h.answer(error=OutcomeUnknown("timeout"))
    _exhaust_lookups(h, fallback.key)
    [outcome] = h.outcomes[req.request_id]
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.OUTCOME_UNKNOWN


def test_an_order_whose_lookups_gave_up_is_reconciled() -> None:
    h = Harness()
    create, req = _gave_up_primary(h)
    [outcome] = h.outcomes[req.request_id]  # type: ignore[attr-defined]
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.OUTCOME_UNKNOWN
    [query] = _reconcile(h)
    assert (query.op, query.key) == (Op.FETCH_ORDER, create.key)
    # It rests at the exchange after all: the lookup's answer makes it a tracked open order.
    h.answer(order_json(create, "NEW"))
    leg = h.book.leg(create.key)  # type: ignore[arg-type]
    assert leg is not None and leg.acked and leg.state.status is OrderStatus.OPEN
    assert len(h.outcomes[req.request_id]) == 1  # type: ignore[attr-defined]  # answered once, not again
    assert _reconcile(h)[0].key == create.key  # now as a live order


def test_an_order_whose_lookups_gave_up_found_open_by_the_scan_is_tracked() -> None:
    h = Harness()
    create, _ = _gave_up_primary(h)
    h.run(h.book.on_open_orders(GatewayResult(create, data=[order_json(create, "NEW")]), h.now))
    leg = h.book.leg(create.key)  # type: ignore[arg-type]
    assert leg is not None and leg.acked and leg.state.status is OrderStatus.OPEN


def test_an_order_whose_lookups_gave_up_and_never_existed_is_closed_not_resent() -> None:
    h = Harness()
    create, _ = _gave_up_primary(h)
    h.now += 60_000  # well past the grace period
    _reconcile(h)
    h.answer(error=OutcomeUnknown("502 again"))  # a failed reconciliation lookup changes nothing
    assert h.book.leg(create.key).state.status is OrderStatus.SUBMITTED  # type: ignore[arg-type, union-attr]
    for _ in range(2):  # "not found" as many times as the resolver wants
        _reconcile(h)
        h.answer(error=OrderNotFound("Order does not exist.", code=-2013))
    leg = h.book.leg(create.key)  # type: ignore[arg-type]
    assert leg is not None and leg.state.status is OrderStatus.REJECTED
    creates = [r for r in h.sent if r.op is Op.CREATE_ORDER]
    assert creates == [create], "a create whose caller heard 'outcome unknown' must never be re-sent"
    assert not h.book.active() and h.book.reconcilable() == []
    [trade] = h.trades()
    assert trade.filled == 0 and "not re-sent" in (trade.note or "")


def test_a_replayed_key_while_the_fallback_is_on_its_way_is_not_told_rejected() -> None:
    h = Harness()
    req = request(key="k-pp")
    h.place(req)
    h.answer(error=_PERCENT_PRICE)
    fallback = h.sent[-1]
    early = request(key="k-pp")
    assert h.place(early) is None  # nothing accepted yet: answered at the first ack (it was `conflict`)
    h.answer(order_json(fallback, "FILLED", "0.01", [("60010", "0.01")]))
    [original] = h.outcomes[req.request_id]
    assert isinstance(original, Accepted) and original.order.client_order_id == fallback.key
    [replay] = h.outcomes[early.request_id]
    assert isinstance(replay, Accepted) and replay.duplicate and replay.order.client_order_id == fallback.key
    again = h.place(request(key="k-pp"))
    assert isinstance(again, Accepted) and again.duplicate and again.order.client_order_id == fallback.key


def test_a_replayed_key_of_a_request_that_ended_rejected_is_told_rejected() -> None:
    h = Harness()
    req = request(key="k-rej")
    h.place(req)
    h.answer(error=FilterRejected("Filter failure: LOT_SIZE", filter_name="LOT_SIZE"))
    [original] = h.outcomes[req.request_id]
    assert isinstance(original, Refusal) and original.reason is RefusalReason.REJECTED
    replay = h.place(request(key="k-rej"))
    assert isinstance(replay, Refusal) and replay.reason is RefusalReason.REJECTED


def test_a_restart_while_the_primarys_fills_were_being_fetched_loses_none_of_them() -> None:
    first = Harness(limit_timeout_ms=5_000)
    req = request(amount="0.01")
    first.place(req)
    create = first.sent[-1]
    first.answer(order_json(create, "NEW"))
    first.fire(f"plan:{req.request_id}")
    # Canceled with 0.004 executed while the stream was down: the fills are asked of myTrades, the fallback
    # for the exact 0.006 left is written ahead — and the process is killed before myTrades answers.
    first.answer(order_json(first.sent[-1], "CANCELED", "0.004", cancel=True))
    fallback = first.sent[-1]
    assert fallback.op is Op.CREATE_ORDER and fallback.params["quantity"] == "0.006"
    [record] = [r for r in first.stored if isinstance(r, RequestRecord)]
    latest = {o.client_order_id: o for o in first.stored if isinstance(o, Order)}
    assert latest[create.key].filled == 0  # the primary's executed 0.004 was never stored

    second = Harness()
    second.now = T0 + 60_000
    assert second.book.restore([record], list(latest.values()), {}, second.now) == 1
    second.run(second.book.resume(second.now))
    lookups = {r.key: i for i, r in enumerate(second.sent) if r.op is Op.FETCH_ORDER}
    assert set(lookups) == {create.key, fallback.key}
    # The fallback's lookup answers first, FILLED, and its fill comes from myTrades ...
    second.answer(order_json(second.sent[lookups[fallback.key]], "FILLED", "0.006"), index=lookups[fallback.key])
    second.answer([_my_trade(second, fallback.key, 5001, "0.006")], index=len(second.sent) - 1)
    assert not second.trades(), "summed up before the primary's lookup answered"
    # ... then a failed primary lookup is asked again, and its answer says 0.004 executed: fetched, not lost.
    second.answer(error=OutcomeUnknown("502"), index=lookups[create.key])
    second.fire(f"resync:{create.key}")
    second.answer(order_json(second.sent[-1], "CANCELED", "0.004"))
    second.answer([_my_trade(second, create.key, 4001, "0.004")])
    [trade] = second.trades()
    assert (trade.filled, trade.status, trade.remainder) == (Decimal("0.01"), TradeStatus.FILLED, Decimal(0))
    assert sorted(f.quantity for f in second.fills()) == [Decimal("0.004"), Decimal("0.006")]
    assert not second.book.active()


def _my_trade(h: Harness, cid: str, trade_id: int, qty: str) -> dict[str, object]:
    """A myTrades row answering the last myTrades request of `cid`."""
    asked = [r for r in h.sent if r.op is Op.MY_TRADES and r.key == cid][-1]
    assert h.sent[-1] is asked
    return {"symbol": "BTCUSDT", "id": trade_id, "orderId": int(asked.params["orderId"]), "price": "60010",
            "qty": qty, "quoteQty": str(Decimal(qty) * 60010), "commission": "0", "commissionAsset": "BNB",
            "time": T0 + 10, "isBuyer": True, "isMaker": False}  # fmt: skip


def test_a_cancel_refused_by_a_stop_trading_error_alerts_with_the_order_that_stays_open() -> None:
    h = Harness(limit_timeout_ms=5_000)
    req = request()
    h.place(req)
    create = h.sent[-1]
    h.answer(order_json(create, "NEW"))
    h.fire(f"plan:{req.request_id}")
    assert h.sent[-1].op is Op.CANCEL_ORDER
    commands = h.book.on_result(GatewayResult(h.sent[-1], error=AuthFailed("Invalid API-key", code=-2015)), h.now)
    h.run(commands)
    [alert] = [c for c in commands if isinstance(c, Alert)]
    assert (alert.key, alert.client_order_id) == ("stop_trading", create.key)
    assert "stays open" in alert.message


@pytest.mark.parametrize(
    ("kind", "status", "executed", "fills", "after"),
    [
        ("market", "FILLED", "0.01", [("60010", "0.004"), ("60011", "0.006")], [EventKind.FILL, EventKind.FILL]),
        ("limit", "EXPIRED", "0.004", [("60000", "0.004")], [EventKind.FILL, EventKind.CANCELED]),
    ],
)
def test_an_ack_that_carries_fills_is_announced_accepted_before_its_fills(
    kind: str, status: str, executed: str, fills: list[tuple[str, str]], after: list[EventKind]
) -> None:
    # A market order's FULL response (or an IOC expiring at once) has its fills applied before the ack is
    # acted on: listeners heard `fill` and `canceled` before `accepted`.
    h = Harness()
    extra: dict[str, Any] = {"order_type": OrderType.MARKET} if kind == "market" else {
        "time_in_force": TimeInForce.IOC, "fallback": FallbackKind.NONE}  # fmt: skip
    req = request(price=None if kind == "market" else "60000", **extra)
    h.place(req)
    create = h.sent[-1]
    h.answer(order_json(create, status, executed, fills))
    cid = create.params["newClientOrderId"]
    kinds = [e.kind for e in h.events if e.client_order_id == cid]
    assert kinds == [EventKind.ACCEPTED, *after], kinds
    assert [e.kind for e in h.events][-1] is EventKind.DONE
