"""Legs rebuilt from storage (crash recovery, late reports) and legs for orders the engine did not place.

Pure conversions. A stored order plus its stored fills gives back the `OrderState` the engine had: the
fills are re-applied by trade id (so a fill arriving again changes nothing) and the exchange's cumulative
quantity is taken as at least what the fills add up to; the exchange is then asked for the rest.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from engine.domain import (
    ClientOrderId,
    Fill,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Pair,
    Priority,
    RequestId,
    Side,
    Symbol,
    TimeInForce,
    TradeId,
)
from engine.exchange import UnknownOutcomeResolver
from engine.execution import OrderSpec, RestoredLeg
from engine.orders import FillEvent, OrderState
from engine.pair._legs import Leg

__all__ = ["leg_from_stored", "plan_leg_of", "stranger_leg"]

_UNACKED = (OrderStatus.PENDING_SUBMIT, OrderStatus.SUBMITTED)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _fill_event(fill: Fill) -> FillEvent:
    return FillEvent(
        fill.trade_id,
        fill.quantity,
        fill.price,
        fill.quote_quantity,
        fill.commission,
        fill.commission_asset,
        fill.is_maker,
        _ms(fill.time),
        fill.exchange_order_id,
    )


def _state(order: Order, fills: list[Fill], symbol: Symbol) -> OrderState:
    events = tuple(sorted((_fill_event(f) for f in fills), key=lambda e: e.trade_id))
    filled = sum((e.quantity for e in events), Decimal(0))
    quote = sum((e.quote_quantity for e in events), Decimal(0))
    fees: dict[str, Decimal] = {}
    for e in events:
        if e.commission > 0:
            fees[e.commission_asset] = fees.get(e.commission_asset, Decimal(0)) + e.commission
    status = order.status
    if status is OrderStatus.PENDING_CANCEL:
        # Whether the cancel reached the exchange is unknown: the order is live until the exchange says not.
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN
    elif status is OrderStatus.PENDING_SUBMIT:
        # The intent was durable, so the create may have left: its outcome is unknown until looked up.
        status = OrderStatus.SUBMITTED
    return OrderState(
        client_order_id=order.client_order_id,
        symbol=symbol,
        side=order.side,
        amount=order.amount,
        status=status,
        exchange_order_id=order.exchange_order_id,
        fills=events,
        filled=filled,
        quote_filled=quote,
        fees=tuple(sorted(fees.items())),
        exchange_cum_qty=max(filled, order.filled),
        exchange_cum_quote=max(quote, order.quote_filled),
    )


def leg_from_stored(
    order: Order, fills: list[Fill], *, symbol: Symbol, priority: Priority, now_ms: int, grace_ms: int
) -> Leg:
    """The leg of a stored order; an order whose create outcome is unknown gets a resolver (looked up by id)."""
    state = _state(order, fills, symbol)
    leg = Leg(
        state=state,
        request_id=order.request_id,
        pair=order.pair,
        role=order.role,
        order_type=order.order_type,
        time_in_force=order.time_in_force,
        price=order.price,
        priority=Priority.FALLBACK if order.role is OrderRole.FALLBACK else priority,
        created_ms=_ms(order.created_at),
        updated_ms=_ms(order.updated_at),
        exchange=order.exchange,
        parent=order.parent_client_order_id,
        acked=order.exchange_order_id is not None,
        slippage_capped=order.slippage_capped,
        # Amended outside the engine before the restart: followed by its order id, the amend not told again.
        exchange_qty=order.amended_amount,
        exchange_cid=order.exchange_client_order_id,
        by_order_id=order.exchange_client_order_id is not None,
    )
    if state.status in _UNACKED:
        # REST's lag counts from the send, and the send may have left long after the intent was stored (held at
        # the gateway by a Retry-After or a full order window) and just before the crash: from the restart, then.
        leg.resolver = UnknownOutcomeResolver(leg.cid, submitted_ms=now_ms, grace_ms=grace_ms, first_lookup_ms=now_ms)
    return leg


def plan_leg_of(order: Order, fills: list[Fill], symbol: Symbol, priority: Priority) -> RestoredLeg:
    """What the execution plan needs of a stored order."""
    spec = OrderSpec(
        client_order_id=order.client_order_id,
        symbol=symbol,
        side=order.side,
        order_type=order.order_type,
        quantity=order.amount,
        price=order.price,
        time_in_force=None if order.order_type in (OrderType.MARKET, OrderType.LIMIT_MAKER) else order.time_in_force,
        role=order.role,
        priority=Priority.FALLBACK if order.role is OrderRole.FALLBACK else priority,
        parent_client_order_id=order.parent_client_order_id,
        slippage_capped=order.slippage_capped,
    )
    known: dict[TradeId, tuple[Decimal, Decimal]] = {f.trade_id: (f.quantity, f.quote_quantity) for f in fills}
    fees: dict[str, Decimal] = {}
    for f in fills:
        if f.commission > 0:
            fees[f.commission_asset] = fees.get(f.commission_asset, Decimal(0)) + f.commission
    return RestoredLeg(spec, order.status, order.filled, order.quote_filled, known, fees, _ms(order.updated_at),
                       amended=order.amended_amount is not None)  # fmt: skip


def stranger_leg(
    *,
    cid: ClientOrderId,
    pair: Pair,
    symbol: Symbol,
    side: Side,
    order_type: str,
    quantity: Decimal,
    price: Decimal | None,
    role: OrderRole,
    now_ms: int,
    exchange: str,
) -> Leg:
    """A leg for an order the engine finds at the exchange but did not place (external) or does not know
    (adopted: its client-id prefix, missing from the database). It is tracked, never driven by a plan."""
    kind = order_type.lower()
    try:
        otype = OrderType(kind)
    except ValueError:
        otype = OrderType.LIMIT  # stop/iceberg variants are tracked like a limit
    prefix = "external" if role is OrderRole.EXTERNAL else "adopted"
    # Not `OrderState.new`: a market order placed for a quote amount (quoteOrderQty) is reported with quantity 0
    # until it fills; its amount then follows what the exchange reports (`PairOrders._apply`).
    state = OrderState(cid, symbol, side, max(quantity, Decimal(0)), status=OrderStatus.SUBMITTED)
    return Leg(
        state=state,
        request_id=RequestId(f"{prefix}-{cid}"[:64]),
        pair=pair,
        role=role,
        order_type=otype,
        time_in_force=TimeInForce.GTC,
        price=price if price else None,
        priority=Priority.FALLBACK,
        created_ms=now_ms,
        updated_ms=now_ms,
        exchange=exchange,
    )
