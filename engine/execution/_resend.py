"""Sending again what did not execute: a market order that was never created, and the remainder after a fallback's
create failed with a retry-later error (FALLBACK_WAIT). Pure; part of `engine.execution._plan` (split for size:
it reads and sets the plan's private state, which only this package may do).

Both decide on the book of now, not the one of the first send: the order may wait out a long Retry-After, or a
restart hours later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.domain import FallbackKind, OrderRequest, OrderRole, OrderStatus, OrderType
from engine.exchange import RetryLater
from engine.execution._guards import check_slippage
from engine.execution._model import ExecutionCommand, ExecutionConfig, OrderSpec, PlaceOrder, _Leg
from engine.execution._reasons import ResultReason

if TYPE_CHECKING:
    from engine.execution._plan import ExecutionPlan

__all__ = ["market_again", "retry_kind", "retry_now", "retry_wait_ms"]


def retry_kind(failed: OrderSpec, request: OrderRequest, config: ExecutionConfig) -> FallbackKind:
    """What the plan sends after `failed` was refused with retry-later: the same kind of order (a priced market
    request's IOC at the bound stays one); the slippage guard is asked again when it is sent."""
    if failed.order_type is OrderType.MARKET or config.fallback is FallbackKind.NONE:
        return FallbackKind.MARKET if failed.order_type is OrderType.MARKET else FallbackKind.IOC_LIMIT
    return FallbackKind.IOC_LIMIT if request.order_type is OrderType.MARKET else config.fallback


def retry_wait_ms(error: RetryLater, config: ExecutionConfig) -> int:
    """How long the plan waits before it sends the remainder again: the retry delay, or the exchange's
    Retry-After when that is longer."""
    if error.retry_after_s is None:
        return config.retry_delay_ms
    return max(config.retry_delay_ms, int(error.retry_after_s * 1000))


def retry_now(plan: ExecutionPlan) -> list[ExecutionCommand]:
    """The wait is over: send the remainder (the fallback step judges it: slippage guard, filters, dust). A wait
    resumed after a restart with no price known yet goes on until the first price: the guard needs one, and
    the book of before the restart is gone."""
    book = plan.book
    if plan._price_needed and (book is None or book.taker_price(plan.request.side) is None):
        return []
    plan._price_needed = False  # judged on a price of now: from here on the plan is as any other
    kind, role = plan._retry
    return plan._place_remainder(kind=kind, role=role)


def market_again(plan: ExecutionPlan, leg: _Leg) -> list[ExecutionCommand]:
    """A market `leg` found never created: the same order again (same client order id) if the book still allows
    it; else the slippage guard's verdict (refused, or a new IOC at the bound when it caps)."""
    book, reference, config = plan.book, plan.reference_price, plan.config
    if book is None or reference is None:
        return [PlaceOrder(leg.spec)]  # nothing newer to judge by than when it was decided
    decision = check_slippage(plan.request.side, reference, book, config.max_slippage, config.slippage_action)
    if decision.allowed and not decision.capped:
        return [PlaceOrder(leg.spec)]
    leg.closed = OrderStatus.REJECTED  # never created: nothing executed
    if not decision.allowed:
        why = f"{decision.reason} (judged again before re-sending)"
        return plan._finish(ResultReason.SLIPPAGE_REFUSED, why, details=decision.details)
    return plan._place_remainder(kind=FallbackKind.IOC_LIMIT, role=OrderRole.FALLBACK)  # capped: a new order
