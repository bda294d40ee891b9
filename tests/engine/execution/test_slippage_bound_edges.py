"""The fallback step's slippage guard at and beyond its bound (found by mutation testing)."""

from __future__ import annotations

from engine.domain import OrderStatus, OrderType
from engine.execution import Book, CancelOrder, ExecutionPlan, LegClosed, PlaceOrder, PriceUpdate, Tick
from tests.engine.execution._plan_helpers import CONFIG, PRIMARY, D, only, started
from tests.engine.execution.conftest_data import RULES, request


def test_a_market_exactly_at_the_slippage_bound_still_gets_the_fallback() -> None:  # kills P7
    # reference 50000, max_slippage 1 %: an ask of 50500 is AT the bound, not beyond it
    plan = started()
    plan.handle(Tick(), 10_000)
    plan.handle(PriceUpdate(Book(D("50400"), D("50500"), 10_000)), 10_000)
    spec = only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_001), PlaceOrder).spec  # type: ignore[attr-defined]
    assert (spec.order_type, spec.quantity, spec.slippage_capped) == (OrderType.MARKET, D("0.01"), False)


def test_a_spike_beyond_the_bound_does_not_cancel_the_limit() -> None:  # kills P36
    # beyond the bound a refused fallback sends nothing: canceling the limit would only lose it
    plan = started()
    assert plan.handle(PriceUpdate(Book(D("50900"), D("51000"), 100), volatile=True), 100) == []
    # within the bound the same spike does cancel it (the documented behaviour)
    plan = started()
    assert isinstance(only(plan.handle(PriceUpdate(Book(D("50000"), D("50001"), 100), volatile=True), 100),
                           CancelOrder), CancelOrder)  # fmt: skip
    # and at intake: a volatile market beyond the bound still places the limit, not the fallback
    far = Book(D("50900"), D("51000"), 0)
    _, commands = ExecutionPlan.start(request(), RULES, far, 0, CONFIG, volatile=True)
    assert only(commands, PlaceOrder).spec.order_type is OrderType.LIMIT  # type: ignore[attr-defined]
