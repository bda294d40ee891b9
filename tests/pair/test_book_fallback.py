"""The pure pair book's limit-to-fallback path: timeouts, cancels, fills, slippage, dust, the amount invariant."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.api import Accepted, EventKind
from engine.domain import ClientOrderId, FallbackKind, Order, OrderStatus, RequestRecord, TradeStatus
from engine.exchange import FilterRejected, InsufficientBalance, OrderNotFound, OutcomeUnknown
from engine.execution import SlippageAction
from engine.gateway import GatewayRequest, Op
from engine.pair import CancelAhead, Persist, Send
from tests.pair._book_helpers import T0, Harness, order_json, request


def test_no_fill_timeout_cancel_then_market_fallback() -> None:
    h = Harness(limit_timeout_ms=5000)
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    cancel = h.sent[-1]
    assert cancel.op is Op.CANCEL_ORDER and cancel.priority == 0
    h.answer(order_json(cancel, "CANCELED", cancel=True))
    fallback = h.sent[-1]
    assert fallback.op is Op.CREATE_ORDER and fallback.params["type"] == "MARKET"
    assert fallback.params["quantity"] == "0.01"
    assert fallback.params["newClientOrderId"].endswith("-f1")
    h.answer(order_json(fallback, "FILLED", "0.01", [("60010", "0.004"), ("60011", "0.006")]))
    [trade] = h.trades()
    assert trade.status is TradeStatus.FILLED and trade.filled == Decimal("0.01")
    assert trade.average_price == (Decimal("60010") * Decimal("0.004") + Decimal("60011") * Decimal("0.006")) / Decimal(
        "0.01"
    )
    assert "limit timeout; fallback market" in trade.note
    assert EventKind.FALLBACK in [e.kind for e in h.events]


def test_partial_fill_then_fallback_for_the_exact_remainder() -> None:
    h = Harness()
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "PARTIALLY_FILLED", "0.00337", [("60000", "0.00337")]))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", "0.00337", cancel=True))
    fallback = h.sent[-1]
    assert fallback.params["quantity"] == "0.00663"
    h.answer(order_json(fallback, "FILLED", "0.00663", [("60010", "0.00663")]))
    [trade] = h.trades()
    assert trade.filled == Decimal("0.01") and trade.status is TradeStatus.FILLED
    assert len(h.fills()) == 2 and sum(f.quantity for f in h.fills()) == Decimal("0.01")


def test_cancel_racing_a_fill_means_no_fallback() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    cancel = h.sent[-1]
    h.answer(error=OrderNotFound("Unknown order sent.", operation="cancel_order", code=-2011))
    fetch = h.sent[-1]
    assert fetch.op is Op.FETCH_ORDER
    h.answer(order_json(fetch, "FILLED", "0.01", [("60000", "0.01")]))
    assert cancel.op is Op.CANCEL_ORDER
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1  # no fallback
    [trade] = h.trades()
    assert trade.status is TradeStatus.FILLED
    # Found hands-on: the note read only "limit timeout" (for a caller's cancel: "canceled by the caller") on a
    # filled trade, and listeners heard an `error` for the -2011 of a cancel that merely came too late.
    assert trade.note == "limit timeout; filled: filled before the cancel took effect", trade.note
    assert not [e for e in h.events if e.kind is EventKind.ERROR]


def test_fallback_rejected_reports_the_remainder() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    h.answer(error=InsufficientBalance("insufficient", operation="create_order", code=-2010))
    [trade] = h.trades()
    assert trade.status is TradeStatus.FAILED and trade.remainder == Decimal("0.01")
    assert "fallback_rejected" in trade.note and "InsufficientBalance" in trade.note


@pytest.mark.parametrize(("action", "expect_type"), [(SlippageAction.REFUSE, None), (SlippageAction.CAP, "LIMIT")])
def test_slippage_guard(action: SlippageAction, expect_type: str | None) -> None:
    h = Harness(slippage_action=action, max_slippage=Decimal("0.001"))
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.run(h.book.on_price(Decimal("60500"), Decimal("60600"), h.now))  # ran away by 1 %
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    if expect_type is None:
        [trade] = h.trades()
        assert "slippage_refused" in trade.note and trade.remainder == Decimal("0.01")
    else:
        fallback = h.sent[-1]
        assert fallback.params["type"] == "LIMIT" and fallback.params["timeInForce"] == "IOC"
        assert Decimal(fallback.params["price"]) == Decimal("60060")  # 60000 × 1.001, within the bound


def test_volatility_spike_skips_the_wait() -> None:
    h = Harness(volatility_trigger=Decimal("0.02"))
    req = request(price="60000")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.run(h.book.on_price(Decimal("58700"), Decimal("58800"), h.now + 500))  # down 2 %, then back
    h.run(h.book.on_price(Decimal("60000"), Decimal("60100"), h.now + 1000))  # within the 0.5 % bound of 60000
    assert h.sent[-1].op is Op.CANCEL_ORDER


def test_a_spike_past_the_slippage_bound_keeps_the_limit() -> None:
    # Found hands-on: a spike canceled a resting limit 56 s early for a capped IOC at the bound, which the market
    # beyond it could not fill (the request ended with 0.001 of 0.01). The limit keeps its chance instead.
    h = Harness(volatility_trigger=Decimal("0.02"))
    req = request(price="59000")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    sent = len(h.sent)
    h.run(h.book.on_price(Decimal("61500"), Decimal("61600"), h.now + 1000))  # 4 % above the limit: beyond 0.5 %
    assert len(h.sent) == sent, "the spike canceled a limit whose fallback could not trade"
    h.fire(f"plan:{req.request_id}")  # the limit's own timeout still applies
    assert h.sent[-1].op is Op.CANCEL_ORDER


def test_dust_remainder_is_reported_not_lost() -> None:
    h = Harness()
    req = request(amount="0.0001")
    h.place(req)
    h.answer(order_json(h.sent[-1], "PARTIALLY_FILLED", "0.00003", [("60000", "0.00003")]))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", "0.00003", cancel=True))
    [trade] = h.trades()
    assert trade.dust and trade.remainder == Decimal("0.00007")
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1


def test_limit_never_created_while_timing_out_goes_to_the_fallback() -> None:
    h = Harness(limit_timeout_ms=1000, unknown_outcome_grace_ms=3000)
    req = request()
    h.place(req)
    primary = ClientOrderId(h.sent[-1].params["newClientOrderId"])
    h.answer(error=OutcomeUnknown("5xx", operation="create_order"))
    h.fire(f"plan:{req.request_id}")  # the limit times out while its outcome is unknown
    for _ in range(20):
        if h.sent[-1].op is Op.CREATE_ORDER and h.sent[-1].params["newClientOrderId"] != primary:
            break
        if h.sent[-1].op is Op.FETCH_ORDER and not h.outcomes.get(req.request_id):
            h.answer(error=OrderNotFound("Order does not exist.", operation="fetch_order", code=-2013))
        pending = [k for k in h.timers if k.startswith("lookup:")]
        if pending:
            h.fire(pending[0])
    fallback = h.sent[-1]
    assert fallback.op is Op.CREATE_ORDER and fallback.params["newClientOrderId"].endswith("-f1")
    assert Op.CANCEL_ORDER not in [r.op for r in h.sent]  # nothing to cancel: it never existed
    leg = h.book.leg(primary)
    assert leg is not None and leg.state.status is OrderStatus.REJECTED  # closed, not left open forever
    assert [o.client_order_id for o in (lg.state for lg in h.book.open_legs())] == [fallback.params["newClientOrderId"]]


def _limit_canceled_with_its_fills_unknown(h: Harness) -> GatewayRequest:
    """A 0.01 limit whose cancel answer says 0.004 executed, its fills not known yet (no stream report, no FULL
    fills); the fallback for 0.006 fills at once. Returns the fallback's create."""
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", "0.004", cancel=True))
    fallback = next(r for r in reversed(h.sent) if r.op is Op.CREATE_ORDER)
    h.answer(order_json(fallback, "FILLED", "0.006", [("60010", "0.006")]), index=h.sent.index(fallback))
    return fallback


def _the_limits_fill(asked: GatewayRequest) -> dict[str, object]:
    """myTrades' row of the limit's 0.004 fill, for the request `asked`."""
    return {
        "symbol": "BTCUSDT", "id": 1, "orderId": int(asked.params["orderId"]), "price": "59950", "qty": "0.004",
        "quoteQty": "239.8", "commission": "0", "commissionAsset": "BNB", "time": T0 + 50, "isBuyer": True,
        "isMaker": True,
    }  # fmt: skip


def test_fallback_never_rebuys_what_the_exchange_already_executed() -> None:
    h = Harness()
    fallback = _limit_canceled_with_its_fills_unknown(h)
    assert Op.MY_TRADES in [r.op for r in h.sent]
    assert fallback.params["quantity"] == "0.006"
    assert h.trades() == []  # the limit's fills are still missing: the trade waits for them
    trades_req = next(r for r in h.sent if r.op is Op.MY_TRADES)
    h.answer([_the_limits_fill(trades_req)], index=h.sent.index(trades_req))
    [trade] = h.trades()
    assert trade.filled == Decimal("0.01") and trade.remainder == 0


def _last_orders(h: Harness) -> dict[str, Order]:
    """The latest stored state of every order, by client order id."""
    return {o.client_order_id: o for o in h.stored if isinstance(o, Order)}


def test_caller_cancel_cancels_and_never_falls_back() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "PARTIALLY_FILLED", "0.002", [("60000", "0.002")]))
    h.run(h.book.cancel(req.request_id, h.now))
    cancel = h.sent[-1]
    assert cancel.op is Op.CANCEL_ORDER
    h.answer(order_json(cancel, "CANCELED", "0.002", cancel=True))
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1
    [trade] = h.trades()
    assert trade.status is TradeStatus.PARTIAL and trade.filled == Decimal("0.002")
    assert trade.remainder == Decimal("0.008") and "canceled by the caller" in trade.note
    assert trade.note.count("canceled by the caller") == 1, trade.note  # said once, not "…; canceled: …" again


def test_a_callers_cancel_leaves_only_behind_its_stored_request() -> None:
    # Stored first: a cancel that fails (and sets the limit back to OPEN) is still the caller's after a crash.
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    commands = h.book.cancel(req.request_id, h.now)
    [ahead] = [c for c in commands if isinstance(c, CancelAhead)]
    assert not [c for c in commands if isinstance(c, Send)], "the cancel must not leave ungated"
    assert ahead.send.op is Op.CANCEL_ORDER and ahead.send.key == h.sent[-1].key
    assert ahead.record.request == req and ahead.record.canceled == "canceled by the caller"
    h.run(commands)
    h.answer(error=OutcomeUnknown("no answer"))  # the cancel failed: the limit is open again
    leg = h.book.leg(ClientOrderId(ahead.send.key))
    assert leg is not None and leg.state.status is OrderStatus.OPEN
    [retry_key] = [k for k in h.timers if k.startswith("plan:")]
    h.fire(retry_key)
    retry = h.sent[-1]
    assert retry.op is Op.CANCEL_ORDER and retry is not ahead.send  # the retry needs no second record


def test_a_cancel_before_the_ack_stores_the_request_canceled_at_once() -> None:
    h = Harness()
    req = request()
    h.place(req)
    commands = h.book.cancel(req.request_id, h.now)
    assert not [c for c in commands if isinstance(c, CancelAhead | Send)]  # the cancel waits for the ack
    [record] = [c.item for c in commands if isinstance(c, Persist) and isinstance(c.item, RequestRecord)]
    assert record.canceled == "canceled by the caller"


def test_cancel_before_the_ack_waits_for_the_ack() -> None:
    # A cancel overtaking its create finds nothing (-2011) and the order would rest: it waits for the ack.
    h = Harness(limit_timeout_ms=1000)
    req = request()
    h.place(req)
    create = h.sent[-1]
    h.fire(f"plan:{req.request_id}")
    assert h.sent[-1] is create
    h.answer(order_json(create, "NEW"))
    assert isinstance(h.outcomes[req.request_id][0], Accepted)
    cancel = h.sent[-1]
    assert cancel.op is Op.CANCEL_ORDER
    h.answer(order_json(cancel, "CANCELED", cancel=True))
    fallback = h.sent[-1]
    assert fallback.op is Op.CREATE_ORDER and fallback.params["type"] == "MARKET"


def test_percent_price_rejection_goes_straight_to_the_fallback() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(error=FilterRejected("Filter failure: PERCENT_PRICE_BY_SIDE", filter_name="PERCENT_PRICE_BY_SIDE"))
    fallback = h.sent[-1]
    assert fallback.op is Op.CREATE_ORDER and fallback.params["newClientOrderId"].endswith("-f1")
    h.answer(order_json(fallback, "FILLED", "0.01", [("60010", "0.01")]))
    [trade] = h.trades()
    assert trade.status is TradeStatus.FILLED and "PERCENT_PRICE_BY_SIDE" in trade.note
    # the caller hears the fallback order: the request executes, so "rejected" would invite a second one
    [outcome] = h.outcomes[req.request_id]
    assert isinstance(outcome, Accepted) and outcome.order.client_order_id.endswith("-f1")


@settings(max_examples=150)
@given(
    primary_fill=st.integers(min_value=0, max_value=1000),
    fills_known=st.booleans(),
    fallback_fill=st.integers(min_value=0, max_value=1000),
    kind=st.sampled_from([FallbackKind.MARKET, FallbackKind.IOC_LIMIT, FallbackKind.NONE]),
    caller_cancels=st.booleans(),
)
def test_limit_plus_fallback_never_exceeds_and_accounts_for_the_amount(
    primary_fill: int, fills_known: bool, fallback_fill: int, kind: FallbackKind, caller_cancels: bool
) -> None:
    step = Decimal("0.00001")
    amount = Decimal("0.01")
    h = Harness(fallback=kind)
    req = request(amount=str(amount))
    h.place(req)
    first = (amount * primary_fill / 1000).quantize(step)
    status = "FILLED" if first == amount else ("PARTIALLY_FILLED" if first else "NEW")
    h.answer(order_json(h.sent[-1], status, str(first), [("59990", str(first))] if first and fills_known else []))
    if first < amount:
        if caller_cancels:
            h.run(h.book.cancel(req.request_id, h.now))
        else:
            h.fire(f"plan:{req.request_id}")
        cancel = next(r for r in reversed(h.sent) if r.op is Op.CANCEL_ORDER)
        h.answer(order_json(cancel, "CANCELED", str(first), cancel=True), index=h.sent.index(cancel))
    creates = [r for r in h.sent if r.op is Op.CREATE_ORDER]
    if caller_cancels:
        assert len(creates) == 1  # the caller's cancel is never followed by a fallback
    if len(creates) == 2:
        rest = Decimal(creates[1].params["quantity"])
        assert first + rest <= amount
        second = (rest * fallback_fill / 1000).quantize(step)
        status = "FILLED" if second == rest else "EXPIRED"
        h.answer(
            order_json(creates[1], status, str(second), [("60010", str(second))] if second else []),
            index=h.sent.index(creates[1]),
        )
    for trades_req in [r for r in h.sent if r.op is Op.MY_TRADES]:
        h.answer(
            [
                {
                    "symbol": "BTCUSDT",
                    "id": 7,
                    "orderId": int(trades_req.params["orderId"]),
                    "price": "59990",
                    "qty": str(first),
                    "quoteQty": "1",
                    "commission": "0",
                    "commissionAsset": "BNB",
                    "time": T0,
                    "isBuyer": True,
                    "isMaker": True,
                }
            ],
            index=h.sent.index(trades_req),
        )
    [trade] = h.trades()
    assert trade.filled + trade.remainder == amount
    assert trade.filled == sum((o.filled for o in _last_orders(h).values()), Decimal(0))
    assert sum(f.quantity for f in h.fills()) == trade.filled <= amount
    assert len({f.trade_id for f in h.fills()}) == len(h.fills())


def test_fills_rest_lags_on_for_a_minute_are_still_awaited_and_stored() -> None:
    # REST can lag the matching engine by tens of seconds: myTrades answers empty for a minute, then has the fill.
    # The summary waits for it (it was given up on after ten one-second attempts before).
    from engine.pair._orders import MAX_FILL_FETCHES, fill_refetch_ms

    waits_s = (1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 30, 30, 30)
    assert [fill_refetch_ms(n) for n in range(1, 14)] == [1_000 * s for s in waits_s]
    assert sum(fill_refetch_ms(n) for n in range(1, MAX_FILL_FETCHES)) >= 120_000
    h = Harness()
    _limit_canceled_with_its_fills_unknown(h)
    started = h.now
    while h.now - started < 60_000:  # a minute of empty answers
        asked = [r for r in h.sent if r.op is Op.MY_TRADES][-1]
        h.answer([], index=h.sent.index(asked))
        key = next(k for k in h.timers if k.startswith("fills:"))
        h.fire(key)
    assert h.trades() == []  # still waiting, not summed without the fill
    asked = [r for r in h.sent if r.op is Op.MY_TRADES][-1]
    h.answer([_the_limits_fill(asked)], index=h.sent.index(asked))
    [trade] = h.trades()
    assert trade.filled == Decimal("0.01")
    assert len([f for f in h.fills() if f.quantity == Decimal("0.004")]) == 1


def test_a_restated_book_stores_a_callers_cancel_again() -> None:
    # An actor crash loses the message's records; `restate` must bring the canceled request back with the rest.
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.run(h.book.cancel(req.request_id, h.now))
    restated = [c.item for c in h.book.restate(h.now) if isinstance(c, Persist) and isinstance(c.item, RequestRecord)]
    assert [r.canceled for r in restated] == ["canceled by the caller"]
    assert restated[0].request == req


def test_a_filled_trade_with_dust_left_says_so_in_its_note() -> None:
    # Found by a strategy author: selling `trade.received` (0.1109889 ETH, step 0.0001) ended `filled`, dust=True and
    # an empty note: a strategy reading the note (or a person the history) was not told 0.0000889 was left.
    h = Harness()
    req = request(amount="0.010005")  # the lot step (0.00001) cuts 0.000005 off
    h.place(req)
    h.answer(order_json(h.sent[-1], "FILLED", "0.01", [("60000", "0.01")]))
    [trade] = h.trades()
    assert trade.status.value == "filled" and trade.dust and trade.remainder == Decimal("0.000005")
    assert trade.note.endswith("dust: 0.000005 left, below the lot step or the minimum notional"), trade.note
