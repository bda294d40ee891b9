"""Numbers in the engine's messages (refusals, violations, trade notes) read as people write them: exact values
without the exchange's scale ("5", not "5.00000000"), and a computed valuation cut to BTC's precision, while the
comparisons behind the message keep using the exact value."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from engine.domain import OrderStatus, OrderType, Pair, Side, display_decimal, plain_decimal
from engine.execution import (
    BTC_DISPLAY_PLACES,
    Book,
    ExecutionPlan,
    LegClosed,
    SlippageAction,
    Tick,
    check_min_wallet,
    check_slippage,
    value_wallet_in_btc,
)
from engine.service._plain import plain_decimal as service_plain_decimal
from tests.engine.execution._plan_helpers import CONFIG, PRIMARY, D, result_of, started
from tests.engine.execution.conftest_data import BOOK, RULES, request


def test_a_notional_below_the_minimum_is_told_without_the_scale_of_its_factors() -> None:
    violation = RULES.check(side=Side.BUY, quantity=D("0.00001000"), price=D("1000.00000000"))
    assert str(violation) == "NOTIONAL: notional 0.01 below 5"


def test_lot_and_price_violations_are_told_plain() -> None:
    odd_qty = RULES.check(side=Side.BUY, quantity=D("0.000015"), price=D("50000.00"))
    assert str(odd_qty) == "LOT_SIZE: quantity 0.000015 not a multiple of stepSize 0.00001"
    odd_price = RULES.check(side=Side.BUY, quantity=D("0.01"), price=D("50000.005"))
    assert str(odd_price) == "PRICE_FILTER: price 50000.005 not a multiple of tickSize 0.01"
    far = RULES.check(side=Side.SELL, quantity=D("0.01"), price=D("9000.00"), reference_price=D("50000.00000000"))
    assert str(far) == "PERCENT_PRICE_BY_SIDE: price 9000 outside [10000, 250000] around 50000"
    nothing = RULES.check(side=Side.BUY, quantity=D(0), price=D("50000"))
    assert str(nothing) == "LOT_SIZE: amount below the lot step (stepSize 0.00001, minQty 0.00001)"


def test_the_wallet_is_shown_to_the_satoshi_and_compared_exactly() -> None:
    valuation = value_wallet_in_btc({"USDT": D("30")}, {Pair("BTC/USDT"): D("13")})
    assert valuation.total_btc == D(30) / D(13)  # 2.307692307692307692307692308: the exact value is kept
    refused = check_min_wallet(valuation, D("3"))
    assert refused.detail == "wallet worth 2.3076923 BTC, below the minimum 3 BTC"
    # just below a minimum of 8 places: refused, and the text never reads as reaching it
    assert check_min_wallet(valuation, D("2.30769231")).detail.startswith("wallet worth 2.3076923 BTC, below")
    assert check_min_wallet(valuation, D("2.30769230")).allowed  # compared exactly, not as shown
    assert BTC_DISPLAY_PLACES == 8


def test_the_slippage_guard_tells_prices_and_percentages_plain() -> None:
    book = Book(D("50900.00000000"), D("51000.00000000"), 0)
    decision = check_slippage(Side.BUY, D("50000.00000000"), book, D("0.01"), SlippageAction.REFUSE)
    assert decision.reason == "market 51000 is 2% from reference 50000, beyond 1%; refused"
    capped = check_slippage(Side.BUY, D("50000.00"), Book(D("50600"), D("50617.284"), 0), D("0.01"),
                            SlippageAction.CAP)  # fmt: skip
    assert capped.reason == "market 50617.284 is 1.2346% from reference 50000, beyond 1%; capped at 50500"


def test_a_remainder_too_small_to_send_is_told_plain() -> None:
    plan = started()
    plan.handle(Tick(), 10_000)
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D("0.00995000")), 10_001))
    assert result.detail == "remainder 0.00005 not tradable: NOTIONAL: notional 2.50005 below 5"


def test_a_market_request_below_the_lot_step_is_told_plain() -> None:
    _, commands = ExecutionPlan.start(request("0.00000100", None, order_type=OrderType.MARKET), RULES, BOOK, 0, CONFIG)
    assert result_of(commands).detail == "LOT_SIZE: amount below the lot step (stepSize 0.00001, minQty 0.00001)"


def test_plain_decimal_moved_to_the_domain_is_still_the_services() -> None:
    assert service_plain_decimal is plain_decimal
    assert plain_decimal(D("0E-8")) == "0" and plain_decimal(D("35.0200000000000000")) == "35.02"


@given(st.decimals(min_value=0, max_value=10**12, allow_nan=False, allow_infinity=False))
def test_display_decimal_cuts_toward_zero_to_its_places(value: Decimal) -> None:
    text = display_decimal(value, 8)
    shown = Decimal(text)
    assert shown <= value and value - shown < Decimal("1e-8")
    assert "E" not in text and (("." not in text) or (len(text.split(".")[1]) <= 8 and not text.endswith("0")))
