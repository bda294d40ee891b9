"""The execution result carries the numbers of its detail for code (`ExecutionResult.details`): a filter failure's
violation details, a dust remainder, and a slippage refusal's prices — at every place the plan ends that way."""

from __future__ import annotations

from engine.domain import FallbackKind, OrderStatus, OrderType
from engine.exchange import OutcomeUnknown
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
    SymbolRules,
    Tick,
)
from tests.engine.execution._plan_helpers import CONFIG, FALLBACK1, PRIMARY, D, only, result_of, started
from tests.engine.execution.conftest_data import BOOK, BTCUSDT_INFO, RULES, request

REFUSE = ExecutionConfig(limit_timeout_ms=10_000, max_slippage=D("0.01"), slippage_action=SlippageAction.REFUSE)


def test_a_limit_refused_by_a_filter_carries_the_violations_details() -> None:
    _, commands = ExecutionPlan.start(request(amount="0.00001", price="50000"), RULES, BOOK, 0, CONFIG)
    result = result_of(commands)
    assert result.reason is ResultReason.REFUSED_FILTER
    assert dict(result.details) == {"filter": "NOTIONAL", "field": "notional", "value": "0.5", "min": "5",
                                    "max": "9000000", "amount": "0.00001", "price": "50000",
                                    "step": "0.00001"}  # fmt: skip
    # PERCENT_PRICE_BY_SIDE is judged on the book's mid (50000.5) at the start
    _, commands = ExecutionPlan.start(request(price="300000"), RULES, BOOK, 0, CONFIG)
    assert dict(result_of(commands).details) == {
        "filter": "PERCENT_PRICE_BY_SIDE", "field": "price", "value": "300000", "min": "10000.1",
        "max": "250002.5", "multiplier_up": "5", "multiplier_down": "0.2", "reference_price": "50000.5",
    }  # fmt: skip


def test_a_market_request_below_the_step_carries_the_lot_filter() -> None:
    req = request(amount="0.000004", price=None, order_type=OrderType.MARKET)
    _, commands = ExecutionPlan.start(req, RULES, BOOK, 0, CONFIG)
    result = result_of(commands)
    assert result.reason is ResultReason.REFUSED_FILTER
    # the amount as it would be sent: rounded down to the step, nothing
    assert dict(result.details) == {"filter": "LOT_SIZE", "field": "amount", "value": "0", "min": "0.00001",
                                    "max": "9000", "step": "0.00001"}  # fmt: skip


def test_a_market_request_below_the_minimum_notional_is_dust_with_its_remainder_and_the_filter() -> None:
    req = request(amount="0.00001", price=None, order_type=OrderType.MARKET)
    _, commands = ExecutionPlan.start(req, RULES, BOOK, 0, CONFIG)
    result = result_of(commands)
    assert (result.reason, result.dust) == (ResultReason.DUST, True)
    # valued at the ask a market buy meets (50001); a market order is exempt from maxNotional here
    assert dict(result.details) == {"filter": "NOTIONAL", "field": "notional", "value": "0.50001", "min": "5",
                                    "amount": "0.00001", "price": "50001", "step": "0.00001",
                                    "remainder": "0.00001"}  # fmt: skip


def test_a_fallback_remainder_above_a_maximum_is_a_filter_failure_with_its_details() -> None:
    info = {**BTCUSDT_INFO, "filters": [
        f if f["filterType"] != "MARKET_LOT_SIZE" else
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "1", "stepSize": "0"}
        for f in BTCUSDT_INFO["filters"]
    ]}  # fmt: skip
    # Started under a maxQty the amount fits (a tighter one at the start refuses it: the intake's check), the filter
    # tightened since (a plan restored after exchangeInfo changed): the fallback step still finds it.
    plan, _ = ExecutionPlan.start(request(amount="2"), RULES, BOOK, 0, CONFIG)
    plan.rules = SymbolRules.from_exchange_info(info)
    plan.handle(Tick(), 10_000)
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D("0.5")), 10_001))
    assert (result.reason, result.dust) == (ResultReason.REFUSED_FILTER, False)
    assert dict(result.details) == {"filter": "MARKET_LOT_SIZE", "field": "amount", "value": "1.5", "max": "1",
                                    "remainder": "1.5"}  # fmt: skip


def test_a_filled_market_leg_cut_by_a_coarser_market_step_says_the_remainder() -> None:
    info = {**BTCUSDT_INFO, "filters": [
        f if f["filterType"] != "MARKET_LOT_SIZE" else
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "100", "stepSize": "0.001"}
        for f in BTCUSDT_INFO["filters"]
    ]}  # fmt: skip
    plan, _ = ExecutionPlan.start(request(), SymbolRules.from_exchange_info(info), BOOK, 0, CONFIG)
    plan.handle(Tick(), 10_000)
    spec = only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D("0.00355")), 10_001), PlaceOrder).spec  # type: ignore[attr-defined]
    result = result_of(plan.handle(LegClosed(spec.client_order_id, OrderStatus.FILLED, spec.quantity), 10_002))
    assert result.reason is ResultReason.DUST
    assert dict(result.details) == {"remainder": "0.00045"}


def test_a_slippage_refusal_carries_the_prices() -> None:
    # a market request with a price: the price bounds its slippage; the ask (50001) is 25 % past it
    req = request(amount="0.01", price="40000", order_type=OrderType.MARKET)
    _, commands = ExecutionPlan.start(req, RULES, BOOK, 0, REFUSE)
    result = result_of(commands)
    assert result.reason is ResultReason.SLIPPAGE_REFUSED
    assert dict(result.details) == {"reference_price": "40000", "bound": "40400", "max_slippage": "0.01",
                                    "market_price": "50001", "slippage": "0.250025"}  # fmt: skip


def test_a_market_fallback_judged_again_before_re_sending_carries_the_prices_of_now() -> None:
    plan = started(REFUSE, fallback=FallbackKind.MARKET)
    plan.handle(Tick(), 10_000)
    only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_001), PlaceOrder)
    plan.handle(LegFailed(FALLBACK1, OutcomeUnknown("timeout")), 10_002)
    plan.handle(PriceUpdate(Book(bid=D("55000"), ask=D("55001"), time_ms=20_000)), 20_000)
    result = result_of(plan.handle(LegNotCreated(FALLBACK1), 30_000))
    assert result.reason is ResultReason.SLIPPAGE_REFUSED and "judged again" in result.detail
    assert dict(result.details) == {"reference_price": "50000", "bound": "50500", "max_slippage": "0.01",
                                    "market_price": "55001", "slippage": "0.10002"}  # fmt: skip


def test_an_ordinary_end_has_no_details() -> None:
    plan = started()
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.FILLED, D("0.01"), D(500)), 5))
    assert result.reason is ResultReason.FILLED and dict(result.details) == {}
