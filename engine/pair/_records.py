"""What the pair book stores and tells about its orders: fills, error records, order events and their words. Pure."""

from __future__ import annotations

from decimal import Decimal

from engine.api import EngineEvent, EventKind
from engine.domain import (
    ClientOrderId,
    ErrorRecord,
    Fill,
    OrderStatus,
    OrderType,
    Pair,
    RequestId,
    TimeInForce,
    plain_decimal,
)
from engine.exchange import ExchangeError
from engine.orders import FillEvent
from engine.pair._legs import Leg, ms_to_dt, order_of

__all__ = ["closed_words", "error_event", "error_record", "fill_of", "filled_of", "leg_event"]


def fill_of(leg: Leg, fill: FillEvent, exchange: str) -> Fill:
    """The stored `Fill` of a fill applied to `leg` (validated only when a value from the wire looks wrong)."""
    fields = {
        "exchange": exchange,
        "symbol": leg.state.symbol,
        "pair": leg.pair,
        "trade_id": fill.trade_id,
        "client_order_id": leg.cid,
        "exchange_order_id": fill.order_id or leg.state.exchange_order_id or 0,
        "side": leg.state.side,
        "price": fill.price,
        "quantity": fill.quantity,
        "quote_quantity": fill.quote_quantity,
        "commission": fill.commission,
        "commission_asset": fill.commission_asset or "",
        "is_maker": fill.is_maker,
        "time": ms_to_dt(fill.time_ms),
    }
    # One check of the wire's numbers stands for pydantic's (a fill per report is the hot path); anything odd
    # goes through full validation and fails exactly as before.
    sane = fill.price > 0 and fill.quantity > 0 and fill.quote_quantity >= 0 and fill.commission >= 0
    if sane and fill.price.is_finite() and fill.quantity.is_finite() and fill.commission.is_finite():
        return Fill.trusted(**fields)
    return Fill(**fields)


def leg_event(kind: EventKind, leg: Leg, now_ms: int, message: str = "", *, fill: Fill | None = None) -> EngineEvent:
    """An event about one order, with its current snapshot."""
    return EngineEvent(
        kind,
        leg.pair,
        ms_to_dt(now_ms),
        request_id=leg.request_id,
        client_order_id=leg.cid,
        order=order_of(leg),
        fill=fill,
        message=message,
    )


def filled_of(filled: Decimal, amount: Decimal) -> str:
    """How much of `amount` filled, in words: "filled 0.004 of 0.01", or "nothing filled of 0.01"."""
    if filled > 0:
        return f"filled {plain_decimal(filled)} of {plain_decimal(amount)}"
    return f"nothing filled of {plain_decimal(amount)}"


def closed_words(leg: Leg) -> str:
    """What happened to a leg that ended CANCELED or EXPIRED, for its `canceled` event: who or what ended it (as
    far as the engine knows) and how much of it filled, by the exchange's count."""
    state = leg.state
    filled = filled_of(state.amount - state.remaining, state.amount)
    if state.status is OrderStatus.CANCELED:
        return f"canceled ({filled})"
    if leg.prevented:  # EXPIRED_IN_MATCH
        return f"expired in match: self-trade prevention, it met another order of this account ({filled})"
    if leg.order_type is OrderType.MARKET or leg.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
        return f"expired by the exchange: what did not fill at once ({filled})"
    return f"expired by the exchange ({filled})"


def error_record(error: ExchangeError, pair: Pair, cid: ClientOrderId, now_ms: int) -> ErrorRecord:
    """The stored record of an exchange error about order `cid` (with its operational class and HTTP status)."""
    return ErrorRecord(
        operation=error.operation or "exchange",
        exchange_code=error.code,
        message=str(error),
        context={"error": type(error).__name__, "http_status": str(error.http_status or "")},
        pair=pair,
        client_order_id=cid,
        time=ms_to_dt(now_ms),
    )


def error_event(pair: Pair, request_id: RequestId | None, cid: ClientOrderId, message: str, now_ms: int) -> EngineEvent:
    """An ERROR event for listeners."""
    return EngineEvent(
        EventKind.ERROR, pair, ms_to_dt(now_ms), request_id=request_id, client_order_id=cid, message=message
    )
