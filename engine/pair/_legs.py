"""Book-keeping records of the pair book: one `Leg` per exchange order, one `Execution` per request."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from engine.domain import (
    ClientOrderId,
    Order,
    OrderRequest,
    OrderRole,
    OrderStatus,
    OrderType,
    Pair,
    RequestId,
    TimeInForce,
    Trade,
    TradeStatus,
)
from engine.exchange._resolver import UnknownOutcomeResolver
from engine.orders import OrderState

__all__ = ["Execution", "Leg", "Phase", "ms_to_dt", "order_of", "trade_of"]


def ms_to_dt(ms: int) -> datetime:
    """Epoch milliseconds → aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class Phase(StrEnum):
    """Where one request's execution stands."""

    QUEUED = "queued"
    """Waiting behind a conflicting request (conflict_policy = queue)."""
    LIMIT = "limit"
    """The primary order is being placed or rests on the book."""
    CANCELLING = "cancelling"
    """The limit timed out (or the market spiked); its cancel is in flight."""
    FALLBACK = "fallback"
    """The fallback order for the remainder is being placed or filled."""
    SETTLING = "settling"
    """Every order has ended; fills the exchange counted are still being fetched before the summary."""
    DONE = "done"


@dataclass
class Leg:
    """One exchange order of a request and everything needed to drive it."""

    state: OrderState
    request_id: RequestId
    pair: Pair
    role: OrderRole
    order_type: OrderType
    time_in_force: TimeInForce
    price: Decimal | None
    created_ms: int
    updated_ms: int
    exchange: str
    parent: ClientOrderId | None = None
    resolver: UnknownOutcomeResolver | None = None
    resends: int = 0
    fill_fetches: int = 0

    @property
    def cid(self) -> ClientOrderId:
        """The client order id."""
        return self.state.client_order_id

    @property
    def terminal(self) -> bool:
        """True once the exchange can no longer change this order."""
        return self.state.status.is_terminal


@dataclass
class Execution:
    """One request: its legs (primary first) and how it ends."""

    request: OrderRequest
    created_ms: int
    phase: Phase = Phase.LIMIT
    legs: list[ClientOrderId] = field(default_factory=list)
    reference_price: Decimal | None = None
    resolved: bool = False
    cancel_reason: str = ""
    note: str = ""
    dust: bool = False
    fallback_count: int = 0


def order_of(leg: Leg) -> Order:
    """The domain `Order` snapshot of a leg (what is stored and reported)."""
    state = leg.state
    return Order(
        client_order_id=state.client_order_id,
        exchange_order_id=state.exchange_order_id,
        exchange=leg.exchange,
        request_id=leg.request_id,
        pair=leg.pair,
        side=state.side,
        order_type=leg.order_type,
        time_in_force=leg.time_in_force,
        role=leg.role,
        parent_client_order_id=leg.parent,
        status=state.status,
        price=leg.price,
        amount=state.amount,
        filled=state.filled,
        remaining=state.amount - state.filled,
        quote_filled=state.quote_filled,
        average_price=state.average_price,
        fees=dict(state.fees),
        created_at=ms_to_dt(leg.created_ms),
        updated_at=ms_to_dt(max(leg.updated_ms, leg.created_ms)),
        last_trade_id=state.fills[-1].trade_id if state.fills else None,
    )


def trade_of(execution: Execution, legs: list[Leg], now_ms: int) -> Trade:
    """Sum up the legs of a request into its `Trade` (both legs' fills, fees, remainder, why it ended)."""
    request = execution.request
    filled = sum((leg.state.filled for leg in legs), Decimal(0))
    quote = sum((leg.state.quote_filled for leg in legs), Decimal(0))
    fees: dict[str, Decimal] = {}
    for leg in legs:
        for asset, amount in leg.state.fees:
            fees[asset] = fees.get(asset, Decimal(0)) + amount
    done = execution.phase is Phase.DONE
    if not done:
        status = TradeStatus.OPEN
    elif filled >= request.amount:
        status = TradeStatus.FILLED
    elif filled > 0:
        status = TradeStatus.PARTIAL
    elif any(leg.state.status is OrderStatus.REJECTED for leg in legs) and len(legs) == 1:
        status = TradeStatus.FAILED
    else:
        status = TradeStatus.CANCELED
    return Trade(
        request_id=request.request_id,
        pair=request.pair,
        side=request.side,
        requested=request.amount,
        filled=filled,
        average_price=quote / filled if filled > 0 else None,
        fees=fees,
        status=status,
        strategy=request.context.strategy,
        timeframe=request.context.timeframe,
        indicators=request.context.indicators(),
        created_at=ms_to_dt(execution.created_ms),
        closed_at=ms_to_dt(now_ms) if done else None,
        remainder=request.amount - filled if done else Decimal(0),
        dust=execution.dust,
        note=execution.note,
    )
