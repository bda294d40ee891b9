"""Pre-trade checks of a new request: the engine's state, the wallet, the risk manager and conflicts.

Exchange filters are not checked here: the execution plan checks them when it starts (one place decides
what an order looks like), and the book turns a plan that ends before placing anything into a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from engine.api import Refusal, RefusalReason
from engine.domain import OrderRequest, OrderRole, OrderStatus, OrderType, Side, display_decimal, plain_decimal
from engine.execution import BTC_DISPLAY_PLACES, DefaultRiskManager, RiskSnapshot, choose_limit_price
from engine.execution import RefusalReason as RiskReason
from engine.pair._legs import Stage

if TYPE_CHECKING:
    from engine.pair._book import PairBook

__all__ = ["IntakeContext", "check_intake"]

_RISK_REASONS = {
    RiskReason.RISK_LIMIT: RefusalReason.RISK_LIMIT,
    RiskReason.WALLET_BELOW_MINIMUM: RefusalReason.WALLET_BELOW_MINIMUM,
    RiskReason.FILTER_FAILURE: RefusalReason.FILTER_FAILURE,
    RiskReason.CONFLICT: RefusalReason.CONFLICT,
    RiskReason.HALTED: RefusalReason.HALTED,
    RiskReason.PAIR_NOT_ALLOWED: RefusalReason.NOT_WHITELISTED,
}


@dataclass(frozen=True)
class IntakeContext:
    """Engine-wide facts the book cannot know by itself.

    `wallet_btc` is the account's value in BTC as last refreshed; with `require_wallet` an unknown value
    refuses too (live orders only when the wallet is known to be worth at least `min_wallet_btc`).
    """

    halted: bool = False
    halt_reason: str = ""
    shutting_down: bool = False
    kill_switch: bool = False
    wallet_btc: Decimal | None = None
    min_wallet_btc: Decimal = Decimal("0.0001")
    require_wallet: bool = False


def check_intake(request: OrderRequest, book: PairBook, ctx: IntakeContext) -> Refusal | None:
    """The first reason to refuse `request`, or None to go ahead."""
    if ctx.shutting_down:
        return Refusal(RefusalReason.SHUTTING_DOWN, "the engine is shutting down")
    if ctx.halted:
        return Refusal(RefusalReason.HALTED, f"the engine is halted: {ctx.halt_reason or 'see alerts'}")
    if ctx.kill_switch:
        return Refusal(RefusalReason.KILL_SWITCH, "intake is paused (kill switch)")
    if request.pair != book.pair:
        return Refusal(RefusalReason.INVALID_REQUEST, f"request for {request.pair} sent to {book.pair}")
    wallet = _check_wallet(ctx)
    if wallet is not None:
        return wallet
    open_orders = _open_orders(book)
    snapshot = RiskSnapshot({book.pair: open_orders}, _reference_price(book, request), ctx.halted)
    decision = book.risk.check_trade_allowed(request, snapshot)
    if not decision.allowed:
        reason = _RISK_REASONS.get(decision.reason, RefusalReason.RISK_LIMIT) if decision.reason else None
        return Refusal(
            reason or RefusalReason.RISK_LIMIT,
            decision.detail or "refused by the risk manager",
            _risk_details(request, book, snapshot, open_orders),
        )
    return _conflict(request, book)


def _conflict(request: OrderRequest, book: PairBook) -> Refusal | None:
    """What `execution.conflict_policy` says of a new request while others of the pair execute: "refuse" refuses it,
    "queue" lets the book queue it, "parallel" lets it run beside those of its side and refuses the other side."""
    if book.settings.conflict_policy == "parallel":
        return _opposite_side(request, book)
    active = book.active()
    if active and book.settings.conflict_policy == "refuse":
        # Any request of the pair, either side: the book runs one execution per pair at a time (its plan owns
        # the pair's resting order and its fallback), so under "refuse" whatever is still executing is in the way.
        busy = active[0].request
        return Refusal(
            RefusalReason.CONFLICT,
            f"{book.pair} is busy: its {busy.side.value} request {busy.request_id} is still executing, and a pair "
            f'executes one request at a time (execution.conflict_policy = "refuse"); wait for its done event, '
            f'cancel it, or set execution.conflict_policy = "queue" to queue new requests behind it (or "parallel" to '
            f"run requests of the same side at once)",
            {"request_id": busy.request_id, "side": busy.side.value},
        )
    return None


def _opposite_side(request: OrderRequest, book: PairBook) -> Refusal | None:
    """Under "parallel": the first of the pair's executing requests, or of its own open orders (one restored or
    adopted whose request is over), on the other side — the engine would trade against itself (its market fallback,
    or a limit priced through its own) — else None: requests of one side never cross each other."""
    side = request.side.value
    busy = next((e.request for e in book.active() if e.request.side is not request.side), None)
    if busy is not None:
        return Refusal(
            RefusalReason.CONFLICT,
            f"{book.pair}: its {busy.side.value} request {busy.request_id} is still executing, and a {side} beside it "
            f'could trade against the engine\'s own order (self-trade); execution.conflict_policy = "parallel" runs '
            f"requests of one side at once, never both sides: wait for its done event or cancel it",
            {"request_id": busy.request_id, "side": busy.side.value, "cause": "opposite_side"},
        )
    leg = next((leg for leg in book.open_legs() if leg.state.side is not request.side
                and leg.role is not OrderRole.EXTERNAL), None)  # fmt: skip
    if leg is None:
        return None
    other = leg.state.side.value
    return Refusal(
        RefusalReason.CONFLICT,
        f"{book.pair}: the engine's {other} order {leg.cid} is still open though no request of it executes (restored "
        f"or adopted; tracked to its end), and a {side} could trade against it (self-trade); wait until it closes, "
        f"or cancel it: cancel_order({book.pair!s}, {leg.request_id!s})",
        {"request_id": leg.request_id, "side": other, "client_order_id": leg.cid, "cause": "opposite_side"},
    )


def _open_orders(book: PairBook) -> int:
    """The pair's open orders, for the risk manager: every order sent and not known to be over, whoever's (each
    executing request's, restored, adopted, external). Under "parallel" also one per executing request with none
    open right now (waiting to send its fallback again, FALLBACK_WAIT): it will have one, and requests let in
    meanwhile would take the pair past `max_open_orders_per_pair` when it does."""
    legs = book.open_legs()
    count = sum(1 for leg in legs if leg.state.status is not OrderStatus.PENDING_SUBMIT)
    if book.settings.conflict_policy == "parallel":
        live = {leg.request_id for leg in legs}
        count += sum(1 for e in book.active() if e.stage is Stage.WORKING and e.request.request_id not in live)
    return count


def _risk_details(request: OrderRequest, book: PairBook, snapshot: RiskSnapshot, open_orders: int) -> dict[str, str]:
    """What the risk check saw, for code to act on (`Refusal.details`, exact plain decimals): the request's value
    by the engine's valuation (`notional` in `quote`, at `reference_price`) and the pair's open orders — and, from
    the default risk manager, the bounds they were held to (a custom one's bounds are its own: its text says)."""
    quote = book.pair.split("/")[1]
    details = {
        "pair": book.pair,
        "quote": quote,
        "amount": plain_decimal(request.amount),
        "open_orders": str(open_orders),
    }
    price = snapshot.reference_price if snapshot.reference_price is not None else request.price
    if price is not None:
        details |= {"reference_price": plain_decimal(price), "notional": plain_decimal(request.amount * price)}
    risk = book.risk
    if isinstance(risk, DefaultRiskManager):
        limit = risk.max_notional_per_order.get(quote)
        if limit is not None:
            details["max_order_notional"] = plain_decimal(limit)
        if risk.max_open_orders_per_pair is not None:
            details["max_open_orders_per_pair"] = str(risk.max_open_orders_per_pair)
    return details


def _check_wallet(ctx: IntakeContext) -> Refusal | None:
    details = {"min_wallet_btc": plain_decimal(ctx.min_wallet_btc)}
    if ctx.wallet_btc is None:
        if not ctx.require_wallet:
            return None
        return Refusal(RefusalReason.WALLET_BELOW_MINIMUM, "the wallet's value is not known yet", details)
    if ctx.wallet_btc < ctx.min_wallet_btc:
        # A computed valuation (amounts × rates, through bridges and inverse pairs) carries ~28 digits: the text
        # shows it to the satoshi, cut toward zero (never reading as the minimum it is below); details keep it exact.
        worth = display_decimal(ctx.wallet_btc, BTC_DISPLAY_PLACES)
        return Refusal(
            RefusalReason.WALLET_BELOW_MINIMUM,
            f"wallet worth {worth} BTC, below the minimum {plain_decimal(ctx.min_wallet_btc)} BTC",
            {**details, "wallet_btc": plain_decimal(ctx.wallet_btc)},
        )
    return None


def _reference_price(book: PairBook, request: OrderRequest) -> Decimal | None:
    """What the request is worth per unit, for the risk limits: never less than what it may fill at.

    A buy fills at its limit or below, so its limit bounds it. A sell fills at its limit or above — at the best
    bid when it is marketable — so it is worth the higher of the two: valued at its limit alone, a sell priced
    far below the market would pass a notional cap it exceeds many times over. A market order is worth what the
    book offers (a price given with it only bounds its slippage); for a buy, the higher of that and its price.
    """
    taker = book.book.taker_price(request.side)
    price = request.price
    if request.order_type is OrderType.MARKET:
        current = taker if taker is not None else book.book.mid
        if request.side is Side.BUY and price is not None:
            return price if current is None else max(price, current)
        return current if current is not None else price
    if price is None:
        price = choose_limit_price(request.side, book.book, book.settings.execution.price_source, request.order_type)
        if price is None:
            return book.book.mid
    if request.side is Side.SELL and taker is not None:
        return max(price, taker)
    return price
