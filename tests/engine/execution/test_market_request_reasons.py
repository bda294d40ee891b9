"""A market request has no limit and so no fallback: its own order's end is named as its own (`market_rejected`,
`market_incomplete`), never as a fallback's — although the plan counts that order as the fallback attempt (so that
a restart sends no second one). A limit request's fallback keeps the fallback's words."""

from __future__ import annotations

import ast
import inspect
import itertools
from dataclasses import replace

from engine.domain import OrderStatus, OrderType
from engine.domain import TradeStatus as TS
from engine.exchange import InsufficientBalance, RateLimited, RetryLater
from engine.execution import (
    ExecutionConfig,
    ExecutionPlan,
    LegClosed,
    LegFailed,
    PlaceOrder,
    ReportResult,
    RestoredLeg,
    ResultReason,
    Tick,
    restore_plan,
)
from tests.engine.execution._plan_helpers import CONFIG, FALLBACK1, PRIMARY, D, only, result_of, started
from tests.engine.execution.conftest_data import BOOK, RULES, request


def _market(price: str | None = None, config: ExecutionConfig = CONFIG) -> tuple[ExecutionPlan, PlaceOrder]:
    plan, commands = ExecutionPlan.start(request(price=price, order_type=OrderType.MARKET), RULES, BOOK, 0, config)
    place = only(commands, PlaceOrder)
    assert isinstance(place, PlaceOrder) and place.spec.client_order_id == PRIMARY
    return plan, place


def test_a_market_request_whose_order_the_exchange_rejects_ends_market_rejected() -> None:
    plan, _ = _market()
    result = result_of(plan.handle(LegFailed(PRIMARY, InsufficientBalance("no money")), 1))
    assert (result.reason, result.status, result.remainder) == (ResultReason.MARKET_REJECTED, TS.FAILED, D("0.01"))
    assert result.reason.value == "market_rejected" and "InsufficientBalance" in result.detail


def test_a_market_request_whose_order_expires_with_a_remainder_ends_market_incomplete() -> None:
    plan, _ = _market()
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.EXPIRED, D("0.004"), D(200)), 1))
    assert (result.reason, result.status, result.remainder) == (ResultReason.MARKET_INCOMPLETE, TS.PARTIAL, D("0.006"))
    assert result.detail == "market order expired with a remainder"
    # a priced market request goes out as an IOC at the bound around its price: the same words for its end
    plan, _ = _market(price="50000")
    result = result_of(plan.handle(LegClosed(PRIMARY, OrderStatus.EXPIRED, D(0)), 1))
    assert result.reason is ResultReason.MARKET_INCOMPLETE
    assert result.detail == "IOC at the slippage bound expired with a remainder"


def test_a_market_request_refused_with_retry_later_until_its_attempts_run_out_ends_market_rejected() -> None:
    plan, _ = _market(config=replace(CONFIG, max_fallback_attempts=2, retry_delay_ms=100))
    assert plan.handle(LegFailed(PRIMARY, RetryLater("busy")), 1) == []
    again = only(plan.handle(Tick(), 101), PlaceOrder)
    assert isinstance(again, PlaceOrder)
    result = result_of(plan.handle(LegFailed(again.spec.client_order_id, RetryLater("busy")), 102))
    assert (result.reason, result.status) == (ResultReason.MARKET_REJECTED, TS.FAILED)


def test_a_market_request_waiting_to_resend_with_no_attempt_left_after_a_restart_ends_market_rejected() -> None:
    plan, place = _market()
    assert plan.handle(LegFailed(PRIMARY, RateLimited("slow", retry_after_s=5)), 1) == []
    retry = plan.fallback_retry
    assert retry is not None and retry[0] == PRIMARY
    _, [report] = restore_plan(plan.request, RULES, [RestoredLeg(place.spec, OrderStatus.REJECTED, updated_ms=1)],
                               created_ms=0, now_ms=2, reference_price=plan.reference_price, book=BOOK,
                               config=replace(CONFIG, max_fallback_attempts=1), retry_at_ms=retry[1])  # fmt: skip
    assert isinstance(report, ReportResult) and report.result.reason is ResultReason.MARKET_REJECTED


def test_a_limit_requests_fallback_keeps_the_fallbacks_words() -> None:
    plan = started()
    plan.handle(Tick(), 10_000)
    only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_001), PlaceOrder)
    result = result_of(plan.handle(LegFailed(FALLBACK1, InsufficientBalance("no money")), 10_002))
    assert (result.reason, result.status) == (ResultReason.FALLBACK_REJECTED, TS.FAILED)
    plan = started()
    plan.handle(Tick(), 10_000)
    only(plan.handle(LegClosed(PRIMARY, OrderStatus.CANCELED, D(0)), 10_001), PlaceOrder)
    result = result_of(plan.handle(LegClosed(FALLBACK1, OrderStatus.EXPIRED, D("0.004"), D(200)), 10_002))
    assert result.reason is ResultReason.FALLBACK_INCOMPLETE


def test_a_volatile_start_sends_the_configured_fallback_in_place_of_the_limit_and_names_it_so() -> None:
    plan, commands = ExecutionPlan.start(request(), RULES, BOOK, 0, CONFIG, volatile=True)
    place = only(commands, PlaceOrder)
    assert isinstance(place, PlaceOrder) and place.spec.order_type is OrderType.MARKET
    result = result_of(plan.handle(LegFailed(place.spec.client_order_id, InsufficientBalance("no money")), 1))
    assert result.reason is ResultReason.FALLBACK_REJECTED


def test_every_reason_says_what_it_means() -> None:
    # The values are machine-readable (the trade's note starts with one): each member has its docstring.
    tree = ast.parse(inspect.getsource(ResultReason))
    body = tree.body[0].body  # type: ignore[attr-defined]
    documented = {
        target.id
        for node, after in itertools.pairwise(body)
        if isinstance(node, ast.Assign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert documented == {r.name for r in ResultReason}
