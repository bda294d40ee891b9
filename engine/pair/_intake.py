"""Pre-trade checks of a new request: state of the engine, wallet, filters, risk limits and conflicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from engine.api import Refusal, RefusalReason
from engine.domain import OrderRequest, OrderStatus, OrderType

if TYPE_CHECKING:
    from engine.pair._book import PairBook

__all__ = ["IntakeContext", "RiskHook", "check_intake"]

RiskHook = Callable[[OrderRequest, int, Decimal | None], str | None]
"""A pluggable risk check: (request, open orders on the pair, reference price) → refusal reason or None."""


@dataclass(frozen=True)
class IntakeContext:
    """Engine-wide facts the book cannot know by itself."""

    halted: bool = False
    halt_reason: str = ""
    shutting_down: bool = False
    kill_switch: bool = False
    wallet_btc: Decimal | None = None
    min_wallet_btc: Decimal = Decimal("0.0001")
    risk: RiskHook | None = None


def check_intake(request: OrderRequest, book: PairBook, ctx: IntakeContext, now_ms: int) -> Refusal | None:
    """The first reason to refuse `request`, or None to go ahead."""
    if ctx.shutting_down:
        return Refusal(RefusalReason.SHUTTING_DOWN, "the engine is shutting down")
    if ctx.halted:
        return Refusal(RefusalReason.HALTED, f"the engine is halted: {ctx.halt_reason or 'see alerts'}")
    if ctx.kill_switch:
        return Refusal(RefusalReason.KILL_SWITCH, "intake is paused (kill switch)")
    if request.pair != book.pair:
        return Refusal(RefusalReason.INVALID_REQUEST, f"request for {request.pair} sent to {book.pair}")
    if ctx.wallet_btc is not None and ctx.wallet_btc < ctx.min_wallet_btc:
        return Refusal(
            RefusalReason.WALLET_BELOW_MINIMUM,
            f"wallet worth {ctx.wallet_btc} BTC, below the minimum {ctx.min_wallet_btc} BTC",
            {"wallet_btc": str(ctx.wallet_btc), "min_wallet_btc": str(ctx.min_wallet_btc)},
        )
    market = request.order_type is OrderType.MARKET
    price = None if market else (request.price if request.price is not None else _book_price(book, request))
    if not market and price is None:
        return Refusal(RefusalReason.INVALID_REQUEST, "no limit price given and no market price known yet")
    violation = book.rules.check(side=request.side, quantity=request.amount, price=price, reference_price=book.book.mid)
    if violation is not None:
        return Refusal(
            RefusalReason.FILTER_FAILURE,
            f"{violation.filter_name}: {violation.reason}",
            {"filter": violation.filter_name},
        )
    reference = price if price is not None else book.book.mid
    if reference is not None and request.amount * reference > book.settings.max_order_notional:
        return Refusal(
            RefusalReason.RISK_LIMIT,
            f"notional {request.amount * reference} above the limit {book.settings.max_order_notional}",
        )
    open_orders = sum(1 for leg in book.open_legs() if leg.state.status is not OrderStatus.PENDING_SUBMIT)
    if open_orders >= book.settings.max_open_orders:
        return Refusal(RefusalReason.RISK_LIMIT, f"{open_orders} open orders on {book.pair}, the limit")
    if ctx.risk is not None:
        reason = ctx.risk(request, open_orders, reference)
        if reason is not None:
            return Refusal(RefusalReason.RISK_LIMIT, reason)
    if book.active() and book.settings.conflict_policy == "refuse":
        busy = book.active()[0].request
        return Refusal(
            RefusalReason.CONFLICT,
            f"a {busy.side.value} request on {book.pair} is still executing",
            {"request_id": busy.request_id},
        )
    return None


def _book_price(book: PairBook, request: OrderRequest) -> Decimal | None:
    if book.settings.limit_price_side == "maker":
        return book.book.maker_price(request.side)
    return book.book.taker_price(request.side)
