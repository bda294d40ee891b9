"""The execution plan's quantity invariant (design.md invariant 2), and fallbacks judged again or bounded by the
caller's own price."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain import FallbackKind, OrderRole, OrderStatus, OrderType, TimeInForce
from engine.domain import TradeStatus as TS
from engine.exchange import (
    OutcomeUnknown,
    RetryLater,
    client_order_id,
)
from engine.execution import (
    Book,
    ExecutionConfig,
    ExecutionPlan,
    LegClosed,
    LegFailed,
    LegNotCreated,
    PlaceOrder,
    PriceUpdate,
    ResultReason,
    SlippageAction,
    Tick,
)
from tests.engine.execution._plan_helpers import CONFIG, FALLBACK1, PRIMARY, D, fill, only, result_of, started
from tests.engine.execution.conftest_data import BOOK, RULES, request

# ---- the quantity invariant ------------------------------------------------------------------------------

STEP = RULES.step_size


@settings(max_examples=300, deadline=None)
@given(
    amount_steps=st.integers(10, 5_000),
    limit_fill_steps=st.lists(st.integers(1, 800), max_size=5),
    in_flight_steps=st.integers(0, 300),
    fallback_fill_fraction=st.sampled_from([D(1), D("0.5"), D(0)]),
    ask=st.sampled_from([D("50001"), D("50400"), D("51000")]),
    kind=st.sampled_from(list(FallbackKind)),
    action=st.sampled_from(list(SlippageAction)),
)
def test_limit_plus_fallback_equals_request_unless_a_guard_stops_it(
    amount_steps: int,
    limit_fill_steps: list[int],
    in_flight_steps: int,
    fallback_fill_fraction: Decimal,
    ask: Decimal,
    kind: FallbackKind,
    action: SlippageAction,
) -> None:
    amount = STEP * amount_steps * 100  # 0.01 … 5 BTC, on the step
    config = ExecutionConfig(limit_timeout_ms=1_000, fallback=kind, slippage_action=action)
    plan, _ = ExecutionPlan.start(request(str(amount)), RULES, BOOK, 0, config)
    local = D(0)
    for trade, steps in enumerate(limit_fill_steps, start=1):
        qty = min(STEP * steps * 10, amount - local)
        if qty <= 0:
            break
        local += qty
        plan.handle(fill(PRIMARY, trade, str(qty)), trade)
    cum = min(amount, local + STEP * in_flight_steps)  # fills the stream has not delivered yet
    plan.handle(Tick(), 1_000)
    plan.handle(PriceUpdate(Book(BOOK.bid, ask, 1_000)), 1_000)
    closed = OrderStatus.FILLED if cum == amount else OrderStatus.CANCELED
    commands = plan.handle(LegClosed(PRIMARY, closed, cum), 1_001)
    fallback_qty = D(0)
    if commands and isinstance(commands[0], PlaceOrder):
        spec = commands[0].spec
        assert spec.quantity <= amount - cum
        fallback_qty = RULES.floor_qty(spec.quantity * fallback_fill_fraction)
        if fallback_qty > 0:
            plan.handle(fill(spec.client_order_id, 10_000, str(fallback_qty), str(ask)), 1_002)
        status = OrderStatus.FILLED if fallback_qty == spec.quantity else OrderStatus.EXPIRED
        commands = plan.handle(LegClosed(spec.client_order_id, status, fallback_qty), 1_003)
    result = result_of(commands)
    assert result.filled == cum + fallback_qty
    assert result.filled <= amount
    assert result.remainder == amount - result.filled
    stopped = result.reason not in (ResultReason.FILLED,)
    if not stopped:
        assert amount - result.filled < STEP  # filled to the lot step
    else:
        assert result.remainder > 0 or result.reason is ResultReason.DUST
        assert result.detail


@pytest.mark.parametrize("action", [SlippageAction.REFUSE, SlippageAction.CAP])
def test_a_market_fallback_that_never_existed_is_judged_again_on_the_book_of_now(action: SlippageAction) -> None:
    # Its create's outcome was unknown (or it waited out a long Retry-After, or a restart): the first guard judged
    # the book of then. Re-sent as it was, it bought 10 % above the reference under a 1 % bound.
    config = ExecutionConfig(limit_timeout_ms=10_000, max_slippage=D("0.01"), slippage_action=action)
    plan = started(config)
    plan.handle(Tick(), 10_000)
    market = only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_001), PlaceOrder).spec  # type: ignore[attr-defined]
    assert market.order_type is OrderType.MARKET
    assert plan.handle(LegFailed(FALLBACK1, OutcomeUnknown("timeout")), 10_002) == []
    resend = only(plan.handle(LegNotCreated(FALLBACK1), 30_000), PlaceOrder)
    assert resend.spec == market  # type: ignore[attr-defined]  # the book still allows it: the same order

    plan = started(config)
    plan.handle(Tick(), 10_000)
    plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_001)
    plan.handle(LegFailed(FALLBACK1, OutcomeUnknown("timeout")), 10_002)
    plan.handle(PriceUpdate(Book(bid=D("55000"), ask=D("55001"), time_ms=20_000)), 20_000)
    commands = plan.handle(LegNotCreated(FALLBACK1), 30_000)
    if action is SlippageAction.REFUSE:
        result = result_of(commands)
        assert result.reason is ResultReason.SLIPPAGE_REFUSED and result.remainder == D("0.01")
    else:
        capped = only(commands, PlaceOrder).spec  # type: ignore[attr-defined]
        assert (capped.order_type, capped.time_in_force, capped.price) == (OrderType.LIMIT, TimeInForce.IOC,
                                                                           D("50500.00"))  # fmt: skip
        assert capped.client_order_id == client_order_id("req-1", pair="BTC/USDT", fallback=2)
        assert capped.slippage_capped


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_an_ioc_or_fok_limit_gets_no_fallback_unless_it_asks_for_one(tif: TimeInForce) -> None:
    # "At this price now, or not at all": the expired limit was followed by a market order past the caller's price.
    plan, commands = ExecutionPlan.start(request(time_in_force=tif), RULES, BOOK, 0, CONFIG)
    limit = only(commands, PlaceOrder).spec  # type: ignore[attr-defined]
    assert (limit.order_type, limit.time_in_force) == (OrderType.LIMIT, tif)
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.EXPIRED, D(0)), 1))
    assert result.reason is ResultReason.FALLBACK_NONE and result.remainder == D("0.01")
    # It said "limit not filled in time; no fallback configured": no time limit, and nothing configured (review)
    assert result.detail.startswith(f"{tif.value} expired with the rest unfilled"), result.detail
    asked = request(time_in_force=tif, fallback=FallbackKind.MARKET)
    plan, _ = ExecutionPlan.start(asked, RULES, BOOK, 0, CONFIG)
    market = only(plan.handle(LegClosed(PRIMARY, OrderStatus.EXPIRED, D(0)), 1), PlaceOrder).spec  # type: ignore[attr-defined]
    assert market.order_type is OrderType.MARKET


def test_a_market_request_with_a_price_is_an_ioc_at_the_bound_around_it_even_with_the_book_inside() -> None:
    # The price is the caller's bound: a plain market order (the book checked once, inside the bound) could walk
    # past it on a large order or a moving book.
    for action in SlippageAction:
        config = ExecutionConfig(max_slippage=D("0.01"), slippage_action=action)
        plan, commands = ExecutionPlan.start(
            request(price="50000", order_type=OrderType.MARKET), RULES, BOOK, 0, config
        )
        spec = only(commands, PlaceOrder).spec  # type: ignore[attr-defined]
        assert (spec.order_type, spec.time_in_force, spec.price) == (OrderType.LIMIT, TimeInForce.IOC, D("50500"))
        assert (spec.role, spec.client_order_id, spec.slippage_capped) == (OrderRole.PRIMARY, PRIMARY, False)
        # What the book did not offer within the bound expires: reported, with no second order. The request's own
        # order ended so: no fallback was asked for, none is named.
        result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.EXPIRED, D("0.004")), 1))
        assert (result.status, result.reason, result.remainder) == (
            TS.PARTIAL,
            ResultReason.MARKET_INCOMPLETE,
            D("0.006"),
        )


def test_a_priced_market_requests_ioc_failing_retry_later_is_placed_again_as_an_ioc_at_the_bound() -> None:
    # Its re-place took the configured fallback (market): inside the bound, a plain market order past the price.
    config = ExecutionConfig(max_slippage=D("0.01"), retry_delay_ms=100)
    plan, commands = ExecutionPlan.start(request(price="50000", order_type=OrderType.MARKET), RULES, BOOK, 0, config)
    first = only(commands, PlaceOrder).spec  # type: ignore[attr-defined]
    assert plan.handle(LegFailed(first.client_order_id, RetryLater("429 -1015")), 1) == []
    again = only(plan.handle(Tick(), 200), PlaceOrder).spec  # type: ignore[attr-defined]
    assert (again.order_type, again.time_in_force, again.price) == (OrderType.LIMIT, TimeInForce.IOC, D("50500"))
