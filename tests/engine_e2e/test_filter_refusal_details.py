"""Through `Engine.place_order` against the simulator: a `filter_failure` refusal carries the filter, the field, the
offending value and the bounds in `details` (exact plain decimals), so a strategy can act on them by code."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from engine.api import Engine, Refusal, RefusalReason
from tests.engine_e2e import test_api_edges as _edges
from tests.engine_e2e.test_api_edges import PAIR

# The engine on a one-pair simulator, streams off, a manual clock: test_api_edges' fixture (assigned, so a test's
# argument may shadow it).
engine = _edges.engine


def _refused(engine: Engine, amount: str, price: str) -> Refusal:
    outcome = engine.place_order(PAIR, "buy", amount, price).result(timeout=10)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.FILTER_FAILURE, outcome
    return outcome


def test_filter_failures_through_the_engine_carry_their_numbers(engine: Engine) -> None:
    lot = _refused(engine, "0.000001", "59000")  # below the lot step: nothing is left once rounded down to it
    assert {k: lot.details[k] for k in ("filter", "field", "value", "min", "step")} == {
        "filter": "LOT_SIZE", "field": "amount", "value": "0", "min": "0.00001", "step": "0.00001"}  # fmt: skip

    small = _refused(engine, "0.00005", "59000")  # worth 2.95 USDT: below the minimum notional of 5
    details = small.details
    assert {k: details[k] for k in ("filter", "field", "value", "min", "amount", "price", "step")} == {
        "filter": "NOTIONAL", "field": "notional", "value": "2.95", "min": "5", "amount": "0.00005",
        "price": "59000", "step": "0.00001"}  # fmt: skip

    far = _refused(engine, "0.001", "400000")  # more than 5 × the market: PERCENT_PRICE_BY_SIDE, judged on the mid
    pp = far.details
    assert (pp["filter"], pp["field"], pp["value"], pp["multiplier_up"], pp["multiplier_down"]) == (
        "PERCENT_PRICE_BY_SIDE", "price", "400000", "5", "0.2")  # fmt: skip
    mid = Decimal(pp["reference_price"])
    assert (Decimal(pp["min"]), Decimal(pp["max"])) == (mid * Decimal("0.2"), mid * 5) and mid * 5 < 400000

    # a market request too small to send: dust, valued at the ask it would meet, with what was left
    dust = engine.place_order(PAIR, "buy", "0.00005", order_type="market").result(timeout=10)
    assert isinstance(dust, Refusal) and dust.reason is RefusalReason.FILTER_FAILURE, dust
    md = dust.details
    assert (md["filter"], md["field"], md["min"], md["amount"], md["remainder"]) == (
        "NOTIONAL", "notional", "5", "0.00005", "0.00005")  # fmt: skip
    assert Decimal(md["value"]) == Decimal(md["amount"]) * Decimal(md["price"]) < 5

    # what a strategy does with them: the least amount on the step worth the minimum is accepted
    step = Decimal(details["step"])
    least = (Decimal(details["min"]) / Decimal(details["price"]) / step).to_integral_value(ROUND_CEILING) * step
    accepted = engine.place_order(PAIR, "buy", str(least), details["price"]).result(timeout=10)
    assert not isinstance(accepted, Refusal), accepted
    assert accepted.order.amount == least == Decimal("0.00009")
