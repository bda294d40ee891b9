"""A plan restored while it waited to re-send its fallback (FALLBACK_WAIT) goes on as the plan without a restart.

The fallback's create failed with a retry-later error: nothing executed, and the plan was to send the remainder
as a new order when its `fallback_retry` timer came due. What the engine stores of that is the failed order
(rejected) and, with the request, that order and the retry's time (`restore_plan(retry_at_ms=...)`).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain import FallbackKind, OrderRequest, OrderRole, OrderStatus, OrderType, TradeId
from engine.exchange import RateLimited
from engine.execution import (
    Book,
    CancelOrder,
    ExecutionCommand,
    ExecutionConfig,
    ExecutionPlan,
    LegClosed,
    LegFailed,
    OrderSpec,
    Phase,
    PlaceOrder,
    PriceUpdate,
    ReportResult,
    RestoredLeg,
    ResultReason,
    SlippageAction,
    Tick,
    restore_plan,
)
from tests.engine.execution.conftest_data import BOOK, RULES, request

D = Decimal
CONFIG = ExecutionConfig(limit_timeout_ms=10_000, max_slippage=D("0.01"), retry_delay_ms=1_000)
FAILED_MS = 20_000
"""When the fallback's create failed (its limit timed out at 10 s)."""


def _waiting(
    req: OrderRequest, config: ExecutionConfig = CONFIG, *, cum: str = "0", retry_after_s: float | None = 5,
    volatile: bool = False,
) -> tuple[ExecutionPlan, list[RestoredLeg]]:  # fmt: skip
    """A plan in FALLBACK_WAIT after its fallback failed with retry-later; and what the engine stored of its orders."""
    plan, commands = ExecutionPlan.start(req, RULES, BOOK, 0, config, volatile=volatile)
    stored: list[RestoredLeg] = []
    [place] = commands
    assert isinstance(place, PlaceOrder)
    if req.order_type is not OrderType.MARKET and not volatile:  # a limit first: it times out, then the fallback
        [cancel] = plan.handle(Tick(), 10_000)
        assert isinstance(cancel, CancelOrder)
        filled, quote = D(cum), D(cum) * 50000
        fills = {TradeId(1): (filled, quote)} if filled > 0 else {}
        stored.append(RestoredLeg(place.spec, OrderStatus.CANCELED, filled, quote, fills))
        [place] = plan.handle(LegClosed(place.spec.client_order_id, OrderStatus.CANCELED, filled, quote), 10_001)
        assert isinstance(place, PlaceOrder)
    busy = RateLimited("Too many new orders", code=-1015, retry_after_s=retry_after_s)
    assert plan.handle(LegFailed(place.spec.client_order_id, busy), FAILED_MS) == []
    assert plan.phase is Phase.FALLBACK_WAIT
    stored.append(RestoredLeg(place.spec, OrderStatus.REJECTED, updated_ms=FAILED_MS))
    return plan, stored


def _restored(
    plan: ExecutionPlan, legs: list[RestoredLeg], now_ms: int, *, book: Book | None = BOOK,
    config: ExecutionConfig = CONFIG, retry_at_ms: int | None = None, canceled: str | None = None,
) -> tuple[ExecutionPlan, list[ExecutionCommand]]:  # fmt: skip
    retry = plan.fallback_retry
    assert retry is not None and retry[0] == legs[-1].spec.client_order_id
    return restore_plan(plan.request, RULES, legs, created_ms=0, now_ms=now_ms, reference_price=plan.reference_price,
                        book=book, config=config, canceled=canceled,
                        retry_at_ms=retry[1] if retry_at_ms is None else retry_at_ms)  # fmt: skip


def _places(commands: list[ExecutionCommand]) -> list[OrderSpec]:
    return [c.spec for c in commands if isinstance(c, PlaceOrder)]


def test_the_restored_wait_keeps_the_time_left_and_sends_what_the_plan_would_have_sent() -> None:
    original, legs = _waiting(request(), cum="0.004")
    assert original.fallback_retry == (legs[-1].spec.client_order_id, FAILED_MS + 5_000)  # Retry-After: 5 s
    restored, commands = _restored(original, legs, FAILED_MS + 2_000)
    assert commands == [] and restored.phase is Phase.FALLBACK_WAIT
    assert restored.next_deadline_ms == FAILED_MS + 5_000
    assert restored.fallback_retry == original.fallback_retry
    assert restored.handle(Tick(), FAILED_MS + 4_999) == []
    [again] = _places(restored.handle(Tick(), FAILED_MS + 5_000))
    assert [again] == _places(original.handle(Tick(), FAILED_MS + 5_000))
    assert again.client_order_id.endswith("-f2") and again.quantity == D("0.006")  # the exact remainder


def test_a_wait_that_ended_while_the_engine_was_down_is_due_at_once() -> None:
    original, legs = _waiting(request())
    restored, commands = _restored(original, legs, FAILED_MS + 3_600_000)
    assert commands == [] and restored.next_deadline_ms == FAILED_MS + 3_600_000
    [again] = _places(restored.handle(Tick(), FAILED_MS + 3_600_000))
    assert again.role is OrderRole.FALLBACK and again.quantity == D("0.01")


def test_rows_from_before_the_retry_was_stored_still_end_the_request_rejected() -> None:
    original, legs = _waiting(request())
    plan, commands = restore_plan(original.request, RULES, legs, created_ms=0, now_ms=FAILED_MS + 1_000,
                                  reference_price=original.reference_price, book=BOOK, config=CONFIG)  # fmt: skip
    assert commands == [] and plan.phase is Phase.FALLBACK_WORKING
    [report] = plan.handle(LegClosed(legs[-1].spec.client_order_id, OrderStatus.REJECTED, D(0)), FAILED_MS + 1_001)
    assert isinstance(report, ReportResult) and report.result.reason is ResultReason.FALLBACK_REJECTED


def test_an_order_whose_create_outcome_is_unknown_is_never_taken_for_a_retry() -> None:
    # Stored SUBMITTED (its create may have executed): it is looked up, and nothing else is sent meanwhile.
    original, legs = _waiting(request())
    legs[-1] = replace(legs[-1], status=OrderStatus.SUBMITTED)
    restored, commands = _restored(original, legs, FAILED_MS + 60_000)
    assert commands == [] and restored.phase is Phase.FALLBACK_WORKING and restored.next_deadline_ms is None
    assert restored.handle(Tick(), FAILED_MS + 120_000) == []
    assert restored.handle(PriceUpdate(BOOK), FAILED_MS + 120_000) == []


def test_no_attempt_left_under_the_configuration_of_now_ends_the_request_rejected() -> None:
    original, legs = _waiting(request())
    fewer = replace(CONFIG, max_fallback_attempts=1)
    _, [report] = _restored(original, legs, FAILED_MS + 1_000, config=fewer)
    assert isinstance(report, ReportResult) and report.result.reason is ResultReason.FALLBACK_REJECTED
    assert report.result.remainder == D("0.01")


def test_a_request_canceled_before_the_restart_gets_no_retry() -> None:
    original, legs = _waiting(request())
    restored, commands = _restored(original, legs, FAILED_MS + 1_000, canceled="canceled by the caller")
    assert not _places(commands) and restored.next_deadline_ms is None
    [report] = restored.handle(LegClosed(legs[-1].spec.client_order_id, OrderStatus.REJECTED, D(0)), FAILED_MS + 2)
    assert isinstance(report, ReportResult) and report.result.reason is ResultReason.CANCELED


def test_with_no_price_after_the_restart_the_retry_waits_for_the_first_one() -> None:
    original, legs = _waiting(request())
    empty = Book(None, None, 0)
    restored, _ = _restored(original, legs, FAILED_MS + 60_000, book=empty)
    assert restored.handle(Tick(), FAILED_MS + 60_000) == []  # due, but the slippage guard has nothing to judge
    assert restored.phase is Phase.FALLBACK_WAIT
    [again] = _places(restored.handle(PriceUpdate(BOOK), FAILED_MS + 61_000))
    assert again.quantity == D("0.01")


def test_a_price_beyond_the_bound_refuses_the_resumed_retry_as_it_would_the_original() -> None:
    original, legs = _waiting(request())
    far = Book(D("51990"), D("52000"), 0)  # 4 % above the limit price, bound 1 %
    restored, _ = _restored(original, legs, FAILED_MS + 1_000, book=far)
    original.handle(PriceUpdate(far), FAILED_MS + 1_000)
    [report] = restored.handle(Tick(), FAILED_MS + 5_000)
    assert isinstance(report, ReportResult) and report.result.reason is ResultReason.SLIPPAGE_REFUSED
    [before] = original.handle(Tick(), FAILED_MS + 5_000)
    assert isinstance(before, ReportResult) and before.result.reason is report.result.reason


@pytest.mark.parametrize(
    ("req", "fallback", "volatile"),
    [
        (request(), FallbackKind.MARKET, False),
        (request(), FallbackKind.IOC_LIMIT, False),
        (request(), FallbackKind.MARKET, True),  # a volatile start: the primary is the fallback step's
        (request(price=None, order_type=OrderType.MARKET), FallbackKind.MARKET, False),  # a market request
        (request(order_type=OrderType.MARKET), FallbackKind.MARKET, False),  # priced: an IOC at the bound
    ],
)
def test_the_retry_sends_the_same_kind_of_order_as_without_the_restart(
    req: OrderRequest, fallback: FallbackKind, volatile: bool
) -> None:
    config = replace(CONFIG, fallback=fallback)
    original, legs = _waiting(req, config, volatile=volatile, retry_after_s=None)
    restored, commands = _restored(original, legs, FAILED_MS + 500, config=config)
    assert commands == [] and restored.next_deadline_ms == FAILED_MS + 1_000  # the retry delay: no Retry-After
    [again] = _places(restored.handle(Tick(), FAILED_MS + 1_000))
    assert [again] == _places(original.handle(Tick(), FAILED_MS + 1_000))
    assert again.role is OrderRole.FALLBACK


@settings(max_examples=80, deadline=None)
@given(
    cum=st.integers(min_value=0, max_value=900),
    ask=st.integers(min_value=49_000, max_value=53_000),
    restart_after=st.integers(min_value=0, max_value=20_000),
    action=st.sampled_from(list(SlippageAction)),
    retry_after_s=st.sampled_from([None, 1, 5, 30]),
)
def test_wherever_the_restart_falls_in_the_wait_the_plan_goes_on_as_it_would_have(
    cum: int, ask: int, restart_after: int, action: SlippageAction, retry_after_s: float | None
) -> None:
    config = replace(CONFIG, slippage_action=action)
    filled = D(cum) / D(100_000)
    original, legs = _waiting(request(), config, cum=str(filled), retry_after_s=retry_after_s)
    book = Book(D(ask) - 10, D(ask), FAILED_MS)
    now = FAILED_MS + restart_after
    restored, commands = _restored(original, legs, now, book=book, config=config)
    assert commands == []
    original.handle(PriceUpdate(book), now)
    due = max(original.next_deadline_ms or 0, now)
    after, before = restored.handle(Tick(), due), original.handle(Tick(), due)
    assert _places(after) == _places(before)
    assert [c.result.reason for c in after if isinstance(c, ReportResult)] == [
        c.result.reason for c in before if isinstance(c, ReportResult)
    ]
    assert filled + sum((s.quantity for s in _places(after)), D(0)) <= D("0.01")
