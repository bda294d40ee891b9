"""Rebuilding an `ExecutionPlan` after a restart from what was stored. Pure.

The second half of `engine.execution._plan` (split for size; it sets the plan's private state, which
only this package may do). The stored request and its orders say where the plan stood:

- the last leg is the live one; earlier legs are closed and count with their cumulative quantities;
- a primary limit whose deadline has not passed keeps waiting with its remaining time;
- a primary limit past its deadline is canceled now (the cancel may or may not have left before the crash:
  a cancel is idempotent, and "unknown order" makes the order desk look its status up);
- a primary limit stored as PENDING_CANCEL before its deadline (by the row's own time, whenever the engine
  comes back) was being canceled by the caller, the shutdown or a volatility spike: the request ends without a
  fallback — after a restart the engine does not trade more than it is sure it was asked to;
- a request its caller canceled (stored with the request before the cancel left, since schema 6) gets no
  fallback whatever its orders say: a cancel that failed had set the limit back to OPEN, and a retried cancel
  was stored PENDING_CANCEL with the retry's time, perhaps past the deadline;
- a primary stored closed with no order after it had ended its plan (a fallback is stored in the same commit as
  the primary's closing state): it gets no fallback after the restart either;
- a fallback leg is simply awaited, and so is a primary the fallback step sent (a market request, or a
  request that started in a volatile market: a market order or an IOC at the slippage bound). Such a
  primary counts as fallback attempt 1, as it did before the restart, so its remainder gets no second order;
- a last leg the fallback step sent, stored rejected, whose create failed with a retry-later error while the
  plan had attempts left (its request stored with `fallback_retry` naming it, since schema 8): the plan waits
  again (FALLBACK_WAIT) until the stored time, or not at all if it passed while the engine was down, then
  sends the remainder as a new order — judged as then by the slippage guard and the filters (dust), on a price
  of after the restart (it waits for one), and within `max_fallback_attempts` as configured now. Any other
  rejected leg (a definite rejection, or a wait that named an earlier order) ends the request
  `fallback_rejected`, as before. An order whose create outcome is unknown is never taken for one: it is not
  stored rejected, and is looked up (then re-sent under its own id only if it never existed);
- a leg the fallback step sent capped by the slippage guard says so itself (`slippage_capped`, stored with the
  order since schema 5): the result says so again. For rows written before that, a leg sent as an IOC at the
  bound although the fallback is a market order was capped too.

The plan then hears the live leg's fate through the ordinary events (its status is looked up at start).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from engine.domain import FallbackKind, OrderRequest, OrderRole, OrderStatus, OrderType, TimeInForce, TradeId
from engine.execution._guards import Book, slippage_bound
from engine.execution._model import CancelOrder, ExecutionCommand, ExecutionConfig, OrderSpec, _Leg
from engine.execution._phase import Phase, _Timer
from engine.execution._plan import ExecutionPlan
from engine.execution._reasons import rejected_reason
from engine.execution._resend import retry_kind
from engine.execution._rules import SymbolRules

__all__ = ["RestoredLeg", "restore_plan"]


@dataclass(frozen=True)
class RestoredLeg:
    """One stored order of the request, as the plan needs it."""

    spec: OrderSpec
    status: OrderStatus
    cum_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    fills: dict[TradeId, tuple[Decimal, Decimal]] = field(default_factory=dict)
    fees: dict[str, Decimal] = field(default_factory=dict)
    updated_ms: int | None = None
    """When the stored state was written (a PENDING_CANCEL: when the cancel was asked for); None if unknown."""
    amended: bool = False
    """Its order was amended outside the engine (stored since schema 12): no fallback for what the amend took."""


def restore_plan(
    request: OrderRequest,
    rules: SymbolRules,
    legs: list[RestoredLeg],
    *,
    created_ms: int,
    now_ms: int,
    reference_price: Decimal | None,
    book: Book | None,
    config: ExecutionConfig | None = None,
    canceled: str | None = None,
    retry_at_ms: int | None = None,
) -> tuple[ExecutionPlan, list[ExecutionCommand]]:
    """The plan of `request` as it stood with `legs` placed (primary first); and what to do right away.
    `created_ms`: when the primary was placed (its limit's time starts there, not at the request, which may have
    waited in the pair's queue); `canceled`: why the caller or the shutdown canceled the request, if one did;
    `retry_at_ms`: the last leg's create failed with a retry-later error and the plan was to send the remainder
    again at this time (`RequestRecord.fallback_retry_at`, given only when `fallback_retry` names the last leg)."""
    if not legs:
        raise ValueError(f"request {request.request_id} has no stored order to resume from")
    config = ExecutionPlan.config_for(request, config)
    market = request.order_type is OrderType.MARKET
    plan = ExecutionPlan(request, rules, config, rules.floor_qty(request.amount, market=market))
    plan.book = book
    plan.reference_price = reference_price if reference_price is not None else request.price
    for stored in legs:
        leg = _Leg(stored.spec, dict(stored.fills), dict(stored.fees))
        leg.cum_qty, leg.cum_quote = stored.cum_qty, stored.cum_quote
        plan._legs.append(leg)
    for leg, stored in zip(plan._legs[:-1], legs[:-1], strict=True):
        leg.closed = stored.status if stored.status.is_terminal else OrderStatus.CANCELED
    plan.amended = any(stored.amended and stored.spec.role is OrderRole.PRIMARY for stored in legs)
    by_fallback_step = [leg.spec for leg in legs if _sent_by_fallback_step(leg.spec, plan)]
    plan._fallback_attempts = len(by_fallback_step)
    # Stored with the order since schema 5; an older row of a market fallback sent as an IOC limit still
    # tells it by its type (not a market request's: one with a price is always sent as an IOC at the bound).
    plan._capped = any(spec.slippage_capped for spec in by_fallback_step) or (
        not market
        and config.fallback is FallbackKind.MARKET
        and any(spec.order_type is OrderType.LIMIT for spec in by_fallback_step)
    )
    live, stored_live = plan._legs[-1], legs[-1]
    spec = live.spec
    resting = spec.role is OrderRole.PRIMARY and spec.resting
    if canceled is not None:
        plan._aborted = f"{canceled} (before a restart); no fallback after recovery"
    elif retry_at_ms is not None and stored_live.status is OrderStatus.REJECTED and spec in by_fallback_step:
        return _resume_wait(plan, retry_at_ms, now_ms)
    if stored_live.status.is_terminal and spec.role is OrderRole.PRIMARY:
        # The primary had closed and nothing followed it: a fallback's intent commits together with its primary's
        # closing row, so the plan had decided on none (canceled from outside, refused by the slippage guard, ...)
        # and was only waiting for fills. Its order's status, looked up at start, ends it without a fallback.
        plan._aborted = plan._aborted or "closed before a restart without a fallback; none after recovery"
        plan.phase = Phase.CANCELING
        return plan, []
    if not resting:
        plan.phase = Phase.FALLBACK_WORKING
        return plan, []
    if canceled is not None:
        plan.phase, plan.canceling = Phase.CANCELING, spec.client_order_id
        return plan, [CancelOrder(spec.client_order_id, spec.symbol, plan._aborted)]
    deadline = created_ms + config.limit_timeout_ms
    # When the cancel was asked for, not when the engine came back, tells a caller's (or shutdown's) cancel from
    # the limit's timeout: back after the deadline, a cancel asked for before it still gets no fallback.
    asked_ms = stored_live.updated_ms if stored_live.updated_ms is not None else now_ms
    if stored_live.status is OrderStatus.PENDING_CANCEL and asked_ms < deadline:
        plan._aborted = "being canceled before a restart; no fallback after recovery"
        plan.phase, plan.canceling = Phase.CANCELING, spec.client_order_id
        return plan, [CancelOrder(spec.client_order_id, spec.symbol, plan._aborted)]
    if stored_live.status is OrderStatus.PENDING_CANCEL or now_ms >= deadline:
        plan.phase, plan.canceling = Phase.CANCELING, spec.client_order_id
        # "limit timeout", as without the restart: the request's story already starts "resumed after a restart"
        return plan, [CancelOrder(spec.client_order_id, spec.symbol, "limit timeout")]
    plan.phase = Phase.LIMIT_WORKING
    plan._timer = _Timer(deadline, "limit_timeout")
    return plan, []


def _resume_wait(plan: ExecutionPlan, retry_at_ms: int, now_ms: int) -> tuple[ExecutionPlan, list[ExecutionCommand]]:
    """FALLBACK_WAIT again, as `ExecutionPlan._on_failed` left it for a retry-later failure of the last leg."""
    live = plan._legs[-1]
    live.closed = OrderStatus.REJECTED
    live.error = "RetryLater: the create failed before a restart; the remainder is sent again"
    if plan._fallback_attempts >= plan.config.max_fallback_attempts:
        return plan, plan._finish(rejected_reason(plan.request), f"{live.error}, but no attempt is left")
    plan.phase = Phase.FALLBACK_WAIT
    plan._retry = (retry_kind(live.spec, plan.request, plan.config), OrderRole.FALLBACK)
    plan._timer = _Timer(max(retry_at_ms, now_ms), "fallback_retry")
    plan._price_needed = True  # the book of before the restart is gone: the guard judges on a price of now
    return plan, []


def _sent_by_fallback_step(spec: OrderSpec, plan: ExecutionPlan) -> bool:
    """Did `ExecutionPlan._place_remainder` send this order (so it counts as a fallback attempt)?"""
    if spec.role is OrderRole.FALLBACK or (spec.role is OrderRole.PRIMARY and spec.order_type is OrderType.MARKET):
        return True
    if spec.role is not OrderRole.PRIMARY or spec.order_type is not OrderType.LIMIT:
        return False
    if spec.time_in_force is not TimeInForce.IOC:
        return False  # the fallback step sends only a market order or an IOC limit
    request = plan.request
    if request.order_type is OrderType.LIMIT_MAKER or request.time_in_force is not TimeInForce.IOC:
        return True  # the limit itself would have been a LIMIT_MAKER, or had the request's GTC / FOK
    # An IOC request: its limit is at the request's (or the book's) price, the fallback step's IOC at the
    # bound. At the bound it is taken for the fallback step: after a restart the engine does not trade more
    # than it is sure it was asked to.
    reference = plan.reference_price
    if reference is None:
        return False
    side = request.side
    return spec.price == plan.rules.round_price(slippage_bound(side, reference, plan.config.max_slippage), side)
