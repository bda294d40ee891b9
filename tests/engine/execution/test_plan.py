"""The limit → fallback execution plan: scenarios and the quantity invariants (design.md invariant 2)."""

from __future__ import annotations

from dataclasses import replace

from engine.domain import FallbackKind, OrderRole, OrderStatus, OrderType, Priority, Side, TimeInForce
from engine.domain import TradeStatus as TS
from engine.exchange import (
    FilterRejected,
    InsufficientBalance,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    RetryLater,
    client_order_id,
)
from engine.execution import (
    Abort,
    Book,
    CancelFailed,
    CancelOrder,
    ExecutionConfig,
    ExecutionPlan,
    LegAcked,
    LegClosed,
    LegFailed,
    LegNotCreated,
    Phase,
    PlaceOrder,
    PriceSource,
    PriceUpdate,
    ResultReason,
    SlippageAction,
    SymbolRules,
    Tick,
    choose_limit_price,
)
from tests.engine.execution._plan_helpers import CONFIG, FALLBACK1, PRIMARY, D, fill, only, result_of, started
from tests.engine.execution.conftest_data import BOOK, BTCUSDT_INFO, RULES, request


def test_limit_fills_in_time() -> None:
    plan, commands = ExecutionPlan.start(request("0.01", "50000"), RULES, BOOK, 0, CONFIG)
    spec = only(commands, PlaceOrder).spec  # type: ignore[attr-defined]
    assert (spec.client_order_id, spec.order_type, spec.quantity, spec.price) == (
        PRIMARY, OrderType.LIMIT, D("0.01"), D("50000"))  # fmt: skip
    assert spec.time_in_force is TimeInForce.GTC
    assert spec.priority is Priority.ENTRY
    assert plan.next_deadline_ms == 10_000
    assert plan.handle(LegAcked(PRIMARY), 5) == []
    plan.handle(fill(PRIMARY, 1, "0.004"), 10)
    plan.handle(fill(PRIMARY, 2, "0.006", "49990"), 20)
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.FILLED, D("0.01"), D("499.94")), 30))
    assert (result.status, result.reason, result.filled, result.remainder) == (TS.FILLED, ResultReason.FILLED,
                                                                               D("0.01"), D(0))  # fmt: skip
    assert result.average_price == D("49994")
    assert result.fees == {"BNB": D("0.00002")}
    assert plan.phase is Phase.DONE


def test_no_fill_then_timeout_cancel_then_market_fallback() -> None:
    plan = started()
    assert plan.handle(Tick(), 9_999) == []
    cancel = only(plan.handle(Tick(), 10_000), CancelOrder)
    assert isinstance(cancel, CancelOrder)
    assert (cancel.client_order_id, cancel.priority) == (PRIMARY, Priority.CANCEL)
    place = only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_050), PlaceOrder)
    spec = place.spec  # type: ignore[attr-defined]
    assert (spec.client_order_id, spec.order_type, spec.quantity, spec.role, spec.priority) == (
        FALLBACK1, OrderType.MARKET, D("0.01"), OrderRole.FALLBACK, Priority.FALLBACK)  # fmt: skip
    assert spec.parent_client_order_id == PRIMARY
    plan.handle(fill(FALLBACK1, 9, "0.01", "50001"), 10_100)
    result = result_of(plan.handle(LegClosed(FALLBACK1, OrderStatus.FILLED, D("0.01")), 10_101))
    assert result.filled == D("0.01")
    assert [leg.role for leg in result.legs] == [OrderRole.PRIMARY, OrderRole.FALLBACK]
    assert result.legs[0].status is OrderStatus.CANCELED


def test_partial_fill_then_fallback_for_the_exact_remainder() -> None:
    plan = started()
    plan.handle(fill(PRIMARY, 1, "0.0037"), 100)
    plan.handle(Tick(), 10_000)
    # the cancel confirmation says 0.0041 filled: one fill is still in flight; the remainder follows z
    place = only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D("0.0041")), 10_010), PlaceOrder)
    assert place.spec.quantity == D("0.0059")  # type: ignore[attr-defined]
    plan.handle(fill(PRIMARY, 2, "0.0004"), 10_020)  # the late fill changes nothing
    plan.handle(fill(FALLBACK1, 3, "0.0059", "50010"), 10_030)
    result = result_of(plan.handle(LegClosed(FALLBACK1, OrderStatus.FILLED, D("0.0059")), 10_040))
    assert result.filled == D("0.01")
    assert result.legs[0].filled == D("0.0041")


def test_cancel_rejected_because_filled() -> None:
    plan = started()
    plan.handle(Tick(), 10_000)
    assert plan.handle(CancelFailed(PRIMARY, OrderNotFound("unknown order")), 10_001) == []
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.FILLED, D("0.01")), 10_100))
    assert (result.status, len(result.legs)) == (TS.FILLED, 1)


def test_transient_cancel_failure_is_retried_later() -> None:
    plan = started()
    plan.handle(Tick(), 10_000)
    assert plan.handle(CancelFailed(PRIMARY, RetryLater("busy")), 10_001) == []
    assert plan.next_deadline_ms == 12_001
    only(plan.handle(Tick(), 12_001), CancelOrder)
    assert plan.handle(CancelFailed(PRIMARY, RateLimited("slow", retry_after_s=30)), 12_002) == []
    assert plan.next_deadline_ms == 42_002  # the exchange's Retry-After beats the (doubled) 4 s backoff


def test_remainder_below_min_notional_is_dust_not_lost() -> None:
    plan = started()
    plan.handle(Tick(), 10_000)
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D("0.00995")), 10_001))
    # Partial, not filled: a lot step could carry the rest (only the minimum notional refuses it).
    assert (result.reason, result.dust, result.remainder, result.status) == (
        ResultReason.DUST, True, D("0.00005"), TS.PARTIAL)  # fmt: skip


def test_most_of_a_request_left_as_dust_is_partial_not_filled() -> None:
    # Found hands-on: 0.00002 of 0.0001 filled, the rest below the minimum notional: the trade said `filled`, and a
    # strategy reading the status took itself for holding five times what it held.
    plan, _ = ExecutionPlan.start(request("0.0001"), RULES, BOOK, 0, CONFIG)  # 5 USDT at 50,000
    plan.handle(Tick(), 10_000)
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D("0.00002")), 10_001))
    assert (result.reason, result.dust, result.remainder, result.status) == (
        ResultReason.DUST, True, D("0.00008"), TS.PARTIAL)  # fmt: skip


def test_off_step_amount_reports_the_cut_as_dust() -> None:
    plan, commands = ExecutionPlan.start(request("0.0100037"), RULES, BOOK, 0, CONFIG)
    assert only(commands, PlaceOrder).spec.quantity == D("0.01")  # type: ignore[attr-defined]
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.FILLED, D("0.01")), 1))
    assert (result.remainder, result.dust, result.status) == (D("0.0000037"), True, TS.FILLED)


def test_slippage_refused_and_capped() -> None:
    plan = started()
    plan.handle(Tick(), 10_000)
    plan.handle(PriceUpdate(Book(D("50900"), D("51000"), 10_000)), 10_000)
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_001))
    assert (result.reason, result.status, result.remainder) == (ResultReason.SLIPPAGE_REFUSED, TS.CANCELED,
                                                                D("0.01"))  # fmt: skip
    assert "refused" in result.detail

    capped = ExecutionConfig(limit_timeout_ms=10_000, max_slippage=D("0.01"), slippage_action=SlippageAction.CAP)
    plan = started(capped)
    plan.handle(Tick(), 10_000)
    plan.handle(PriceUpdate(Book(D("50900"), D("51000"), 10_000)), 10_000)
    spec = only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_001), PlaceOrder).spec  # type: ignore[attr-defined]
    assert (spec.order_type, spec.time_in_force, spec.price) == (OrderType.LIMIT, TimeInForce.IOC, D("50500"))
    plan.handle(fill(FALLBACK1, 5, "0.004", "50500"), 10_002)
    result = result_of(plan.handle(LegClosed(FALLBACK1, OrderStatus.EXPIRED, D("0.004")), 10_003))
    assert (result.reason, result.status, result.filled, result.slippage_capped) == (
        ResultReason.FALLBACK_INCOMPLETE, TS.PARTIAL, D("0.004"), True)  # fmt: skip


def test_ioc_limit_fallback_kind_sells_at_the_bound() -> None:
    plan = started(ExecutionConfig(limit_timeout_ms=1, fallback=FallbackKind.IOC_LIMIT, max_slippage=D("0.001")),
                   side=Side.SELL, price="50001")  # fmt: skip
    plan.handle(Tick(), 1)
    spec = only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 2), PlaceOrder).spec  # type: ignore[attr-defined]
    assert (spec.order_type, spec.time_in_force, spec.price) == (OrderType.LIMIT, TimeInForce.IOC, D("49951.00"))


def test_fallback_none_reports_the_remainder() -> None:
    plan = started(ExecutionConfig(limit_timeout_ms=1, fallback=FallbackKind.NONE))
    plan.handle(Tick(), 1)
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D("0.002")), 2))
    assert (result.reason, result.status, result.remainder) == (ResultReason.FALLBACK_NONE, TS.PARTIAL, D("0.008"))


def test_request_overrides_fallback_and_timeout() -> None:
    plan = started(fallback=FallbackKind.NONE)
    assert plan.config.fallback is FallbackKind.NONE


def test_volatility_skips_the_wait() -> None:
    plan = started()
    assert plan.handle(PriceUpdate(BOOK, volatile=False), 100) == []
    cancel = only(plan.handle(PriceUpdate(BOOK, volatile=True), 200), CancelOrder)
    assert "volatility" in cancel.reason  # type: ignore[attr-defined]
    plan2, commands = ExecutionPlan.start(request(), RULES, BOOK, 0, CONFIG, volatile=True)
    assert only(commands, PlaceOrder).spec.order_type is OrderType.MARKET  # type: ignore[attr-defined]
    assert plan2.phase is Phase.FALLBACK_WORKING


def test_percent_price_rejection_goes_straight_to_fallback() -> None:
    plan = started()
    error = FilterRejected("x", filter_name="PERCENT_PRICE_BY_SIDE")
    spec = only(plan.handle(LegFailed(PRIMARY, error), 5), PlaceOrder).spec  # type: ignore[attr-defined]
    assert (spec.order_type, spec.quantity) == (OrderType.MARKET, D("0.01"))
    other = started()
    result = result_of(other.handle(LegFailed(PRIMARY, FilterRejected("x", filter_name="LOT_SIZE")), 5))
    assert (result.reason, result.status) == (ResultReason.LIMIT_REJECTED, TS.FAILED)


def test_a_percent_price_rejection_without_a_fallback_is_the_limits_rejection() -> None:
    # Found hands-on: with `fallback = none` it ended "limit not filled in time; no fallback configured" (canceled),
    # though the limit never rested: the exchange's filter error is the answer.
    plan = started(replace(CONFIG, fallback=FallbackKind.NONE))
    error = FilterRejected("Filter failure: PERCENT_PRICE_BY_SIDE", filter_name="PERCENT_PRICE_BY_SIDE")
    result = result_of(plan.handle(LegFailed(PRIMARY, error), 5))
    assert (result.reason, result.status) == (ResultReason.LIMIT_REJECTED, TS.FAILED)
    assert "PERCENT_PRICE_BY_SIDE" in result.detail


def test_a_limit_outside_the_percent_price_band_around_the_market_is_refused_not_sent_at_market() -> None:
    # A SELL at 9,000 with the book at 50,000 is a fat finger far more often than a spike (in a spike the
    # exchange's band follows its lagging average price, and its rejection is what goes to the fallback, above):
    # sending the fallback would sell at market what was meant to rest far away.
    _, commands = ExecutionPlan.start(request(price="9000", side=Side.SELL), RULES, BOOK, 0, CONFIG)
    result = result_of(commands)
    assert result.reason is ResultReason.REFUSED_FILTER and "PERCENT_PRICE" in result.detail
    assert not [c for c in commands if isinstance(c, PlaceOrder)]


def test_a_filled_market_fallback_cut_by_a_coarser_market_step_reports_the_rest_as_dust() -> None:
    # MARKET_LOT_SIZE step 0.001 against LOT_SIZE 0.00001: 0.00645 left goes out as 0.006 and fills; the
    # 0.00045 it could not carry was reported as a failed fallback (PARTIAL, fallback_incomplete), not as dust.
    info = {**BTCUSDT_INFO, "filters": [
        f if f["filterType"] != "MARKET_LOT_SIZE" else
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "100", "stepSize": "0.001"}
        for f in BTCUSDT_INFO["filters"]
    ]}  # fmt: skip
    plan, _ = ExecutionPlan.start(request(), SymbolRules.from_exchange_info(info), BOOK, 0, CONFIG)
    plan.handle(Tick(), 10_000)
    fallback = only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D("0.00355")), 10_001), PlaceOrder)
    spec = fallback.spec  # type: ignore[attr-defined]
    assert spec.quantity == D("0.006")
    result = result_of(plan.handle(LegClosed(spec.client_order_id, OrderStatus.FILLED, spec.quantity), 10_002))
    assert (result.reason, result.dust, result.remainder) == (ResultReason.DUST, True, D("0.00045"))


def test_fallback_failure_per_error_class() -> None:
    def to_fallback() -> ExecutionPlan:
        plan = started()
        plan.handle(Tick(), 10_000)
        only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_001), PlaceOrder)
        return plan

    plan = to_fallback()
    assert plan.handle(LegFailed(FALLBACK1, RateLimited("slow", retry_after_s=5)), 10_002) == []
    assert plan.next_deadline_ms == 15_002
    assert plan.handle(Tick(), 15_001) == []
    spec = only(plan.handle(Tick(), 15_002), PlaceOrder).spec  # type: ignore[attr-defined]
    assert spec.client_order_id == client_order_id("req-1", pair="BTC/USDT", fallback=2)

    plan = to_fallback()
    assert plan.handle(LegFailed(FALLBACK1, OutcomeUnknown("timeout")), 10_002) == []  # the resolver's job
    resend = only(plan.handle(LegNotCreated(FALLBACK1), 30_000), PlaceOrder)
    assert resend.spec.client_order_id == FALLBACK1  # type: ignore[attr-defined]

    plan = to_fallback()
    result = result_of(plan.handle(LegFailed(FALLBACK1, InsufficientBalance("no money")), 10_002))
    assert (result.reason, result.remainder, result.status) == (ResultReason.FALLBACK_REJECTED, D("0.01"),
                                                                TS.FAILED)  # fmt: skip
    assert result.legs[1].error is not None


def test_retries_are_bounded() -> None:
    plan = started(ExecutionConfig(limit_timeout_ms=1, max_fallback_attempts=2))
    plan.handle(Tick(), 1)
    first = only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 2), PlaceOrder)
    plan.handle(LegFailed(first.spec.client_order_id, RetryLater("x")), 3)  # type: ignore[attr-defined]
    second = only(plan.handle(Tick(), 2_000), PlaceOrder)
    result = result_of(plan.handle(LegFailed(second.spec.client_order_id, RetryLater("x")), 2_001))  # type: ignore[attr-defined]
    assert result.reason is ResultReason.FALLBACK_REJECTED


def test_canceled_outside_the_engine_stops_the_fallback_unless_configured() -> None:
    plan = started()
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D("0.003")), 50))
    assert (result.reason, result.status) == (ResultReason.CANCELED_EXTERNALLY, TS.PARTIAL)
    plan = started(ExecutionConfig(fallback_after_external_cancel=True))
    only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D("0.003")), 50), PlaceOrder)


def test_a_limit_expired_by_self_trade_prevention_stops_like_an_outside_cancel_unless_configured() -> None:
    # EXPIRED_IN_MATCH: an order of this account (a person in the UI, another bot) met the working limit.
    prevented = LegClosed(PRIMARY, OrderStatus.EXPIRED, D("0.003"), prevented=True)
    result = result_of(started().handle(prevented, 50))
    assert (result.reason, result.status) == (ResultReason.CANCELED_EXTERNALLY, TS.PARTIAL)
    assert "self-trade prevention" in result.detail
    only(started(ExecutionConfig(fallback_after_external_cancel=True)).handle(prevented, 50), PlaceOrder)
    # A resting GTC limit expired by the exchange's own rules (a halt; not a match with this account): outside the
    # engine too. It sent the market fallback at once, the limit's remaining time and the setting ignored (found by
    # a simulator audit: the simulator never expired a resting order).
    expired = LegClosed(PRIMARY, OrderStatus.EXPIRED, D("0.003"))
    result = result_of(started().handle(expired, 50))
    assert (result.reason, result.status) == (ResultReason.CANCELED_EXTERNALLY, TS.PARTIAL)
    assert "expired by the exchange" in result.detail
    only(started(ExecutionConfig(fallback_after_external_cancel=True)).handle(expired, 50), PlaceOrder)
    # A LIMIT_MAKER rests the same (it carries no time in force): diff review.
    maker, _ = ExecutionPlan.start(request(order_type=OrderType.LIMIT_MAKER), RULES, BOOK, 0, CONFIG)
    assert result_of(maker.handle(expired, 50)).reason is ResultReason.CANCELED_EXTERNALLY
    # Met while the engine's own timeout cancel was on its way: still someone else's trade, still no fallback.
    plan = started(ExecutionConfig(limit_timeout_ms=1))
    only(plan.handle(Tick(), 1), CancelOrder)
    result = result_of(plan.handle(prevented, 2))
    assert result.reason is ResultReason.CANCELED_EXTERNALLY


def test_cancel_of_a_limit_that_never_existed_goes_to_fallback() -> None:
    plan = started()
    plan.handle(LegFailed(PRIMARY, OutcomeUnknown("timeout")), 5)
    only(plan.handle(Tick(), 10_000), CancelOrder)
    plan.handle(CancelFailed(PRIMARY, OrderNotFound("unknown")), 10_001)
    place = only(plan.handle(LegNotCreated(PRIMARY), 25_000), PlaceOrder)
    assert place.spec.client_order_id == FALLBACK1  # type: ignore[attr-defined]


def test_refusals_before_sending() -> None:
    _, commands = ExecutionPlan.start(request("0.00001"), RULES, BOOK, 0, CONFIG)
    result = result_of(commands)
    assert (result.reason, result.status, result.dust) == (ResultReason.REFUSED_FILTER, TS.FAILED, True)
    assert "NOTIONAL" in result.detail
    _, commands = ExecutionPlan.start(request(price=None), RULES, Book(None, None, 0), 0, CONFIG)
    assert result_of(commands).reason is ResultReason.REFUSED_NO_PRICE


def test_choose_limit_price() -> None:
    assert choose_limit_price(Side.BUY, BOOK, PriceSource.MAKER) == D("50000")
    assert choose_limit_price(Side.BUY, BOOK, PriceSource.TAKER) == D("50001")
    assert choose_limit_price(Side.SELL, BOOK, PriceSource.MAKER) == D("50001")
    assert choose_limit_price(Side.SELL, Book(None, None, 0), PriceSource.TAKER) is None


def test_price_from_the_book() -> None:
    _, maker = ExecutionPlan.start(request(price=None), RULES, BOOK, 0, CONFIG)
    assert only(maker, PlaceOrder).spec.price == D("50000")  # type: ignore[attr-defined]
    taker_cfg = ExecutionConfig(price_source=PriceSource.TAKER)
    _, taker = ExecutionPlan.start(request(price=None, side=Side.SELL), RULES, BOOK, 0, taker_cfg)
    assert only(taker, PlaceOrder).spec.price == D("50000")  # type: ignore[attr-defined]


def test_a_limit_maker_without_a_price_rests_at_its_own_side_whatever_the_price_side() -> None:
    # At the taker's price a post-only order always crosses and the exchange rejects it (-2010).
    taker_cfg = ExecutionConfig(price_source=PriceSource.TAKER)
    for side, own in ((Side.BUY, D("50000")), (Side.SELL, D("50001"))):
        _, commands = ExecutionPlan.start(
            request(price=None, side=side, order_type=OrderType.LIMIT_MAKER), RULES, BOOK, 0, taker_cfg
        )
        spec = only(commands, PlaceOrder).spec  # type: ignore[attr-defined]
        assert (spec.order_type, spec.price) == (OrderType.LIMIT_MAKER, own)


def test_market_request_is_one_market_order() -> None:
    plan, commands = ExecutionPlan.start(request(price=None, order_type=OrderType.MARKET), RULES, BOOK, 0)
    spec = only(commands, PlaceOrder).spec  # type: ignore[attr-defined]
    assert (spec.order_type, spec.role, spec.client_order_id) == (OrderType.MARKET, OrderRole.PRIMARY, PRIMARY)
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.FILLED, D("0.01")), 1))
    assert result.status is TS.FILLED


def test_events_after_done_and_for_unknown_legs_are_ignored() -> None:
    plan = started()
    result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.FILLED, D("0.01")), 1))
    assert plan.handle(Tick(), 99_999) == []
    assert plan.handle(LegClosed(PRIMARY, OrderStatus.FILLED, D("0.01")), 2) == []
    assert plan.handle(LegAcked("bx-unknown"), 3) == []  # type: ignore[arg-type]


def test_abort_cancels_the_live_leg_and_never_falls_back() -> None:
    plan = started()
    plan.handle(fill(PRIMARY, 1, "0.003"), 5)
    cancel = only(plan.handle(Abort(), 10), CancelOrder)
    assert cancel.client_order_id == PRIMARY and plan.next_deadline_ms is None  # type: ignore[attr-defined]
    assert plan.handle(Abort(), 11) == []  # a second cancel request changes nothing
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D("0.003")), 20))
    assert (result.status, result.reason, result.remainder) == (TS.PARTIAL, ResultReason.CANCELED, D("0.007"))


def test_abort_during_the_fallback_cancels_the_fallback_leg() -> None:
    plan = started()
    plan.handle(Tick(), 10_000)
    only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_001), PlaceOrder)
    cancel = only(plan.handle(Abort("shutdown"), 10_002), CancelOrder)
    assert cancel.client_order_id == FALLBACK1  # type: ignore[attr-defined]
    result = result_of(plan.handle(LegNotCreated(FALLBACK1), 10_003))
    assert (result.status, result.reason, result.detail) == (TS.CANCELED, ResultReason.CANCELED, "shutdown")


def test_abort_while_waiting_to_re_place_ends_at_once() -> None:
    plan = started()
    plan.handle(Tick(), 10_000)
    plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_001)
    assert plan.handle(LegFailed(FALLBACK1, RateLimited("slow down", retry_after_s=5)), 10_002) == []
    assert plan.phase is Phase.FALLBACK_WAIT
    assert result_of(plan.handle(Abort(), 10_003)).reason is ResultReason.CANCELED


def test_an_amount_below_the_lot_step_is_refused_saying_so() -> None:
    # It read "LOT_SIZE: quantity 0E-8 must be > 0": the amount given, rounded down to the step, was nothing.
    _, commands = ExecutionPlan.start(request("0.000001"), RULES, BOOK, 0, CONFIG)
    result = result_of(commands)
    assert result.reason is ResultReason.REFUSED_FILTER
    assert "below the lot step (stepSize 0.00001" in result.detail and "E-" not in result.detail
