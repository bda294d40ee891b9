"""A filter violation carries its numbers for code (`Violation.details`, exact plain decimals): the filter, the field,
the offending value and the filter's bounds that apply — so a strategy can round to the step or raise the amount to
the minimum notional without parsing the text. The slippage guard's verdict carries its prices the same way."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.domain import Side, plain_decimal
from engine.execution import Book, SlippageAction, SymbolRules, Violation, check_slippage
from tests.engine.execution.conftest_data import BTCUSDT_INFO, RULES

D = Decimal


def _with(*replaced: dict[str, Any], status: str = "TRADING") -> SymbolRules:
    """RULES with the filters of the same type replaced."""
    kinds = {f["filterType"] for f in replaced}
    filters = [f for f in BTCUSDT_INFO["filters"] if f["filterType"] not in kinds] + list(replaced)
    return SymbolRules.from_exchange_info({**BTCUSDT_INFO, "status": status, "filters": filters})


MARKET_STEP = _with({"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "100", "stepSize": "0.001"})
BY_SIDE = _with({"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "2", "bidMultiplierDown": "0.5",
                 "askMultiplierUp": "1.5", "askMultiplierDown": "0.8", "avgPriceMins": 5})  # fmt: skip
LEGACY = SymbolRules.from_exchange_info({**BTCUSDT_INFO, "filters": [
    {"filterType": "MIN_NOTIONAL", "minNotional": "10", "applyToMarket": False, "avgPriceMins": 5},
    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.1", "multiplierDown": "0.9", "avgPriceMins": 5},
]})  # fmt: skip

PRICE = {"filter": "PRICE_FILTER", "field": "price", "min": "0.01", "max": "1000000", "tick": "0.01"}
LOT = {"filter": "LOT_SIZE", "field": "amount", "min": "0.00001", "max": "9000", "step": "0.00001"}
NOTIONAL = {"filter": "NOTIONAL", "field": "notional", "min": "5", "max": "9000000", "step": "0.00001"}


@pytest.mark.parametrize(
    ("rules", "side", "qty", "price", "ref", "details"),
    [
        (RULES, Side.BUY, "0.001", "50000.005", None, {**PRICE, "value": "50000.005"}),  # off the tick
        (RULES, Side.BUY, "0.001", "0.001", None, {**PRICE, "value": "0.001"}),  # below minPrice
        (RULES, Side.BUY, "0.00001", "2000000", None, {**PRICE, "value": "2000000"}),  # above maxPrice
        (RULES, Side.BUY, "0.001", "0", None, {**PRICE, "value": "0"}),  # not > 0
        (RULES, Side.BUY, "0.000015", "50000", None, {**LOT, "value": "0.000015"}),  # off the step
        (RULES, Side.BUY, "0.000001", "50000", None, {**LOT, "value": "0.000001"}),  # below minQty
        (RULES, Side.BUY, "9001", "1", None, {**LOT, "value": "9001"}),  # above maxQty
        (RULES, Side.BUY, "0", "50000", None, {**LOT, "value": "0"}),  # nothing left after the step
        # MARKET_LOT_SIZE of BTCUSDT: only maxQty is enforced (minQty and stepSize 0): the others are left out
        (RULES, Side.BUY, "101", None, "50000", {"filter": "MARKET_LOT_SIZE", "field": "amount", "value": "101",
                                                  "max": "100"}),
        (MARKET_STEP, Side.SELL, "0.0015", None, "50000", {"filter": "MARKET_LOT_SIZE", "field": "amount",
                                                           "value": "0.0015", "min": "0.001", "max": "100",
                                                           "step": "0.001"}),
        (RULES, Side.BUY, "0.00001", "50000", None, {**NOTIONAL, "value": "0.5", "amount": "0.00001",
                                                     "price": "50000"}),
        # a market order: valued at the reference price, and exempt from maxNotional (applyMaxToMarket false)
        (RULES, Side.SELL, "0.00003", None, "50000.5", {"filter": "NOTIONAL", "field": "notional",
                                                        "value": "1.500015", "min": "5", "amount": "0.00003",
                                                        "price": "50000.5", "step": "0.00001"}),
        (MARKET_STEP, Side.BUY, "0.002", None, "2000", {"filter": "NOTIONAL", "field": "notional", "value": "4",
                                                        "min": "5", "amount": "0.002", "price": "2000",
                                                        "step": "0.001"}),  # the market lot step it moves by
        (RULES, Side.BUY, "200", "50000", None, {**NOTIONAL, "value": "10000000", "amount": "200",
                                                 "price": "50000"}),
        (LEGACY, Side.BUY, "0.0001", "50000", None, {"filter": "MIN_NOTIONAL", "field": "notional", "value": "5",
                                                     "min": "10", "amount": "0.0001", "price": "50000"}),
        (RULES, Side.BUY, "0.001", "300000", "50000", {"filter": "PERCENT_PRICE_BY_SIDE", "field": "price",
                                                       "value": "300000", "min": "10000", "max": "250000",
                                                       "multiplier_up": "5", "multiplier_down": "0.2",
                                                       "reference_price": "50000"}),
        # the side's own multipliers: a sell is held to the ask multipliers
        (BY_SIDE, Side.SELL, "1", "70", "100", {"filter": "PERCENT_PRICE_BY_SIDE", "field": "price", "value": "70",
                                                "min": "80", "max": "150", "multiplier_up": "1.5",
                                                "multiplier_down": "0.8", "reference_price": "100"}),
        (LEGACY, Side.SELL, "1", "120", "100", {"filter": "PERCENT_PRICE", "field": "price", "value": "120",
                                                "min": "90", "max": "110", "multiplier_up": "1.1",
                                                "multiplier_down": "0.9", "reference_price": "100"}),
        (_with(status="CANCEL_ONLY"), Side.BUY, "1", "1", None, {"filter": "SYMBOL_STATUS", "field": "status",
                                                                 "value": "CANCEL_ONLY"}),
    ],
)  # fmt: skip
def test_every_filter_kind_carries_its_filter_field_value_and_bounds(
    rules: SymbolRules, side: Side, qty: str, price: str | None, ref: str | None, details: dict[str, str]
) -> None:
    violation = rules.check(side=side, quantity=D(qty), price=None if price is None else D(price),
                            reference_price=None if ref is None else D(ref))  # fmt: skip
    assert violation is not None
    assert dict(violation.details) == details, str(violation)
    assert violation.details["filter"] == violation.filter_name


_RULE_SETS = {"BTCUSDT": RULES, "market_step": MARKET_STEP, "by_side": BY_SIDE, "legacy": LEGACY}


def _amounts() -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=D(0), max_value=D(250), places=7, allow_nan=False, allow_infinity=False)


def _prices() -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=D(0), max_value=D(2_000_000), places=3, allow_nan=False, allow_infinity=False)


@settings(max_examples=400, deadline=None)
@given(
    rules_name=st.sampled_from(sorted(_RULE_SETS)),
    side=st.sampled_from(list(Side)),
    qty=_amounts(),
    price=st.none() | _prices(),
    ref=st.none() | st.decimals(min_value=D("0.01"), max_value=D(500_000), places=2),
)
@example(rules_name="BTCUSDT", side=Side.BUY, qty=D("0.000015"), price=D(50000), ref=None)
@example(rules_name="market_step", side=Side.BUY, qty=D("0.0015"), price=None, ref=D(50000))
@example(rules_name="BTCUSDT", side=Side.SELL, qty=D("0.001"), price=D("50000.005"), ref=None)
@example(rules_name="by_side", side=Side.SELL, qty=D(1), price=D(70), ref=D(100))
def test_a_violations_details_are_consistent_with_it(
    rules_name: str, side: Side, qty: Decimal, price: Decimal | None, ref: Decimal | None
) -> None:
    rules = _RULE_SETS[rules_name]
    violation = rules.check(side=side, quantity=qty, price=price, reference_price=ref)
    if violation is None:
        return
    details = violation.details
    assert details["filter"] == violation.filter_name
    for key, text in details.items():
        if key not in ("filter", "field") and not (key == "value" and details["field"] == "status"):
            assert plain_decimal(D(text)) == text, (key, text)  # exact plain decimals: no exponent, no padding
    _assert_consistent(violation, qty, price, ref)


def _assert_consistent(violation: Violation, qty: Decimal, price: Decimal | None, ref: Decimal | None) -> None:
    details = violation.details
    what = details["field"]
    value = D(details["value"])
    low, high = D(details.get("min", "0")), D(details.get("max", "0"))
    above = high > 0 and value > high
    size = what in ("amount", "notional")  # "above the maximum" (too big to send, not dust) is about size only
    assert violation.above_max is (size and above)
    assert violation.is_dust is (size and not above)
    if what == "amount":  # LOT_SIZE / MARKET_LOT_SIZE: on its own grid from minQty, within [min, max]
        assert value == qty
        step = D(details.get("step", "0"))
        off_step = step > 0 and (value - low) % step != 0
        assert value <= 0 or (low > 0 and value < low) or above or off_step
        if value > 0:
            assert details["value"] in violation.reason
    elif what == "price" and violation.filter_name == "PRICE_FILTER":
        assert value == price
        tick = D(details.get("tick", "0"))
        assert value <= 0 or (low > 0 and value < low) or above or (tick > 0 and (value - low) % tick != 0)
    elif what == "price":  # PERCENT_PRICE(_BY_SIDE): outside [ref × down, ref × up]
        assert value == price and D(details["reference_price"]) == ref
        assert low == value_or(ref) * D(details["multiplier_down"])
        assert high == value_or(ref) * D(details["multiplier_up"])
        assert value < low or value > high
    elif what == "notional":  # amount × the price it is valued at (the limit, or the reference for a market order)
        assert D(details["amount"]) == qty and D(details["price"]) == (price if price is not None else ref)
        assert value == D(details["amount"]) * D(details["price"])
        assert (low > 0 and value < low) or above
        if low > 0 and value < low and "step" in details:  # the amount min ÷ price rounded up to the step passes it
            step = D(details["step"])
            least = (low / D(details["price"]) / step).to_integral_value(ROUND_CEILING) * step
            assert least * D(details["price"]) >= low and (least - step) * D(details["price"]) < low
    else:
        assert what == "status" and violation.filter_name == "SYMBOL_STATUS"


def value_or(ref: Decimal | None) -> Decimal:
    assert ref is not None
    return ref


def test_the_slippage_guard_gives_its_prices_for_code() -> None:
    book = Book(bid=D("50990"), ask=D("51000.5"), time_ms=0)
    refused = check_slippage(Side.BUY, D("50000"), book, D("0.01"), SlippageAction.REFUSE)
    assert not refused.allowed
    assert dict(refused.details) == {"reference_price": "50000", "bound": "50500", "max_slippage": "0.01",
                                     "market_price": "51000.5", "slippage": "0.02001"}  # fmt: skip
    empty = check_slippage(Side.SELL, D("100"), Book(None, D("1"), 0), D("0.5"), SlippageAction.CAP)
    assert dict(empty.details) == {"reference_price": "100", "bound": "50", "max_slippage": "0.5"}
