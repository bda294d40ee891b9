"""A request the plan ends before any order is accepted is refused with its numbers in `Refusal.details` (exact plain
decimals), not only in the text: a filter failure's filter, field, value and bounds — so a strategy can round to the
step or raise the amount to the minimum notional by code —, a dust remainder, a slippage refusal's prices."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.api import Refusal, RefusalReason
from engine.domain import OrderType, plain_decimal
from engine.exchange import FilterRejected
from engine.execution import SlippageAction
from tests.pair._book_helpers import Harness, request

LOT = {"filter": "LOT_SIZE", "field": "amount", "min": "0.00001", "max": "9000", "step": "0.00001"}


def _refused(h: Harness, **kw: object) -> Refusal:
    outcome = h.place(request(**kw))  # type: ignore[arg-type]
    assert isinstance(outcome, Refusal), outcome
    assert h.sent == [], h.sent  # nothing went to the exchange
    return outcome


@pytest.mark.parametrize(
    ("kw", "details"),
    [
        # rounded down to the step, nothing is left: the value as it would have been sent
        ({"amount": "0.000001"}, {**LOT, "value": "0"}),
        ({"price": "2000000", "amount": "0.001"},
         {"filter": "PRICE_FILTER", "field": "price", "value": "2000000", "min": "0.01", "max": "1000000",
          "tick": "0.01"}),
        ({"amount": "0.00005", "price": "60000"},
         {"filter": "NOTIONAL", "field": "notional", "value": "3", "min": "5", "max": "9000000", "amount": "0.00005",
          "price": "60000", "step": "0.00001"}),
        ({"amount": "200", "price": "60000"},
         {"filter": "NOTIONAL", "field": "notional", "value": "12000000", "min": "5", "max": "9000000",
          "amount": "200", "price": "60000", "step": "0.00001"}),
        # a market request: its order is judged at the ask it meets (60010), with what is left of it
        ({"amount": "101", "price": None, "order_type": OrderType.MARKET},
         {"filter": "MARKET_LOT_SIZE", "field": "amount", "value": "101", "max": "100", "remainder": "101"}),
        ({"amount": "0.00005", "price": None, "order_type": OrderType.MARKET},
         {"filter": "NOTIONAL", "field": "notional", "value": "3.0005", "min": "5", "amount": "0.00005",
          "price": "60010", "step": "0.00001", "remainder": "0.00005"}),
    ],
)  # fmt: skip
def test_a_filter_failure_refusal_carries_the_filter_the_value_and_the_bounds(
    kw: dict[str, object], details: dict[str, str]
) -> None:
    refusal = _refused(Harness(), **kw)
    assert refusal.reason is RefusalReason.FILTER_FAILURE
    assert dict(refusal.details) == details, refusal.message
    assert details["filter"] in refusal.message


def test_a_slippage_refusal_carries_the_reference_the_market_and_the_bound() -> None:
    # a market request's price bounds its slippage: the ask is 20 % past it
    refusal = _refused(Harness(slippage_action=SlippageAction.REFUSE), amount="0.01", price="50000",
                       order_type=OrderType.MARKET)  # fmt: skip
    assert refusal.reason is RefusalReason.RISK_LIMIT
    assert dict(refusal.details) == {"reference_price": "50000", "bound": "50250", "max_slippage": "0.005",
                                     "market_price": "60010", "slippage": "0.2002"}  # fmt: skip


def test_a_refusal_after_a_primary_that_never_was_keeps_its_client_order_id_beside_the_numbers() -> None:
    # The limit is rejected by PERCENT_PRICE at the exchange: the fallback is judged against the limit's price, the
    # market (ask 60010) is 1.7 % past it, the guard refuses. The caller hears the primary's id and the prices.
    h = Harness(slippage_action=SlippageAction.REFUSE)
    req = request(price="59000")
    h.place(req)
    primary = h.sent[-1].params["newClientOrderId"]
    h.answer(error=FilterRejected("Filter failure: PERCENT_PRICE_BY_SIDE", filter_name="PERCENT_PRICE_BY_SIDE"))
    [refusal] = h.outcomes[req.request_id]
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.RISK_LIMIT, refusal
    assert dict(refusal.details) == {"client_order_id": primary, "reference_price": "59000", "bound": "59295",
                                     "max_slippage": "0.005", "market_price": "60010",
                                     "slippage": plain_decimal(Decimal(1010) / Decimal(59000))}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(amount=st.decimals(min_value=Decimal("0.0000001"), max_value=Decimal("0.0002"), places=7))
def test_a_too_small_limit_is_refused_with_details_that_say_why(amount: Decimal) -> None:
    # At 60000 the minimum notional of 5 is 0.00008334 (step 0.00001): below it, the refusal's numbers tell a
    # strategy what to raise the amount to; at or above it nothing is refused.
    h = Harness()
    outcome = h.place(request(amount=str(amount), price="60000"))
    sendable = (amount / Decimal("0.00001")).to_integral_value(rounding=ROUND_FLOOR) * Decimal("0.00001")
    if sendable * 60000 >= 5:
        assert not isinstance(outcome, Refusal), outcome
        return
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.FILTER_FAILURE
    details = outcome.details
    value = Decimal(details["value"])
    if details["filter"] == "LOT_SIZE":  # nothing left once rounded down to the step
        assert value == 0 == sendable and Decimal(details["step"]) > amount
    else:
        assert details["filter"] == "NOTIONAL" and details["field"] == "notional"
        assert Decimal(details["amount"]) == sendable and value == sendable * Decimal(details["price"])
        assert value < Decimal(details["min"])
        # what a strategy computes from the details: the smallest amount on the step that passes; it is sent
        step = Decimal(details["step"])
        needed = (Decimal(details["min"]) / Decimal(details["price"]) / step).to_integral_value(
            ROUND_CEILING) * step  # fmt: skip
        again = Harness()
        assert again.place(request(amount=str(needed), price="60000")) is None  # not refused: sent, awaiting the ack
        assert Decimal(again.sent[-1].params["quantity"]) == needed
