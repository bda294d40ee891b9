"""A limit request whose market fallback MARKET_LOT_SIZE could never accept (the amount above its maxQty, or all of
it below its minQty) is refused when its plan starts — `filter_failure` with the filter's numbers — not accepted,
left to rest, and failed after the limit's wait with nothing filled (scale review: 5,000 DOGE with maxQty 1,000).
An IOC-limit or no fallback is not a market order: the request goes ahead."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.api import RefusalReason
from engine.domain import FallbackKind
from engine.execution import ExecutionPlan, PlaceOrder, ResultReason
from engine.pair._outcomes import refusal_of
from tests.engine.execution._plan_helpers import CONFIG, only, result_of
from tests.engine.execution.conftest_data import BOOK, RULES, request
from tests.engine.execution.test_violation_details import _with

D = Decimal
MARKET_MIN = _with({"filterType": "MARKET_LOT_SIZE", "minQty": "0.01", "maxQty": "100", "stepSize": "0.001"})


def test_an_amount_above_market_max_qty_is_refused_at_intake_when_the_fallback_is_market() -> None:
    plan, commands = ExecutionPlan.start(request("150", fallback=FallbackKind.MARKET), RULES, BOOK, 0, CONFIG)
    result = result_of(commands)
    assert result.reason is ResultReason.REFUSED_FILTER and not plan.leg_ids()
    refusal = refusal_of(result)
    assert refusal.reason is RefusalReason.FILTER_FAILURE
    assert refusal.details == {"filter": "MARKET_LOT_SIZE", "field": "amount", "value": "150", "max": "100"}
    assert "MARKET_LOT_SIZE" in refusal.message and "maxQty 100" in refusal.message, refusal.message


def test_an_amount_all_below_market_min_qty_is_refused_at_intake() -> None:
    _plan, commands = ExecutionPlan.start(request("0.005", fallback=FallbackKind.MARKET), MARKET_MIN, BOOK, 0, CONFIG)
    refusal = refusal_of(result_of(commands))
    assert refusal.reason is RefusalReason.FILTER_FAILURE
    assert refusal.details == {"filter": "MARKET_LOT_SIZE", "field": "amount", "value": "0.005", "min": "0.01",
                               "max": "100", "step": "0.001"}  # fmt: skip


@pytest.mark.parametrize("amount", ["100", "0.01", "0.0105"])  # at the bounds; off the market step: rounded down
def test_an_amount_the_market_lot_accepts_goes_ahead(amount: str) -> None:
    _plan, commands = ExecutionPlan.start(request(amount, fallback=FallbackKind.MARKET), MARKET_MIN, BOOK, 0, CONFIG)
    only(commands, PlaceOrder)


@pytest.mark.parametrize("fallback", [FallbackKind.IOC_LIMIT, FallbackKind.NONE])
def test_other_fallbacks_are_not_held_to_market_lot_size(fallback: FallbackKind) -> None:
    _plan, commands = ExecutionPlan.start(request("150", fallback=fallback), RULES, BOOK, 0, CONFIG)
    only(commands, PlaceOrder)
