"""Inputs and outputs of the order state machine, and converters from what the exchange sends.

Events are what happened (local decisions and exchange reports); effects are what the caller must do or
record as a consequence. Both are frozen and hashable so event logs can be replayed and compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.domain import ClientOrderId, ExchangeOrderId, OrderStatus, TradeId
from engine.exchange import ExchangeOrderStatus, ExecutionReport, ExecutionType

__all__ = [
    "Acked",
    "Anomaly",
    "CancelRejected",
    "CancelRequested",
    "CreateRejected",
    "ExchangeStatus",
    "FetchMissingFills",
    "FetchOrderStatus",
    "FillApplied",
    "FillEvent",
    "NotCreated",
    "OrderEffect",
    "OrderEvent",
    "StatusChanged",
    "SubmitOutcomeUnknown",
    "Submitted",
    "events_from_report",
    "fill_from_my_trade",
    "status_from_rest_order",
]


# ---- events ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submitted:
    """Local: the create request left the process (its intent was written first)."""


@dataclass(frozen=True, slots=True)
class SubmitOutcomeUnknown:
    """Local: the create timed out / got a 5xx; the order may exist. A resolver looks it up."""


@dataclass(frozen=True, slots=True)
class NotCreated:
    """Local: the resolver concluded the order was never created; it may be resent with the same id."""


@dataclass(frozen=True, slots=True)
class CreateRejected:
    """The exchange definitely refused the create."""

    reason: str


@dataclass(frozen=True, slots=True)
class Acked:
    """The create was acknowledged (REST response) with the exchange's order id."""

    order_id: ExchangeOrderId


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """Local: a cancel was sent."""


@dataclass(frozen=True, slots=True)
class CancelRejected:
    """The cancel failed. `order_gone` for -2011 "Unknown order sent.": the order is filled or canceled."""

    reason: str
    order_gone: bool = False


@dataclass(frozen=True, slots=True)
class ExchangeStatus:
    """The exchange's view of the order (a report's `X`/`z`/`Z`, or a REST order): status and cumulatives."""

    status: ExchangeOrderStatus
    cum_qty: Decimal
    cum_quote: Decimal
    order_id: ExchangeOrderId | None = None


@dataclass(frozen=True, slots=True)
class FillEvent:
    """One trade of the order, from the stream (`x=TRADE`) or from myTrades over REST — the same trade id
    either way, which is what makes applying both harmless."""

    trade_id: TradeId
    quantity: Decimal
    price: Decimal
    quote_quantity: Decimal
    commission: Decimal
    commission_asset: str
    is_maker: bool
    time_ms: int
    order_id: ExchangeOrderId | None = None


OrderEvent = (
    Submitted
    | SubmitOutcomeUnknown
    | NotCreated
    | CreateRejected
    | Acked
    | CancelRequested
    | CancelRejected
    | ExchangeStatus
    | FillEvent
)


# ---- effects --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """Record / announce the new status."""

    client_order_id: ClientOrderId
    old: OrderStatus
    new: OrderStatus


@dataclass(frozen=True, slots=True)
class FillApplied:
    """A new fill was accounted: store it (idempotently on (symbol, trade id)) and tell listeners."""

    client_order_id: ClientOrderId
    fill: FillEvent


@dataclass(frozen=True, slots=True)
class FetchMissingFills:
    """The exchange's cumulative quantity is ahead of the fills known here: GET myTrades?orderId=…
    and apply what comes back. Nothing is invented meanwhile."""

    client_order_id: ClientOrderId
    exchange_order_id: ExchangeOrderId | None
    missing_qty: Decimal


@dataclass(frozen=True, slots=True)
class FetchOrderStatus:
    """The order's fate is unclear (e.g. a cancel answered "unknown order"): query it by client id."""

    client_order_id: ClientOrderId


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something the exchange said contradicts the books (over-fill, activity after rejection): alert."""

    client_order_id: ClientOrderId
    reason: str


OrderEffect = StatusChanged | FillApplied | FetchMissingFills | FetchOrderStatus | Anomaly


# ---- converters -----------------------------------------------------------------------------------------


def events_from_report(report: ExecutionReport) -> tuple[OrderEvent, ...]:
    """The events of one execution report, fill first so its cumulative quantity is already accounted."""
    status = ExchangeStatus(report.order_status, report.cum_qty, report.cum_quote, report.order_id)
    if report.is_trade and report.trade_id is not None:
        fill = FillEvent(
            trade_id=report.trade_id,
            quantity=report.last_qty,
            price=report.last_price,
            quote_quantity=report.last_quote,
            commission=report.commission,
            commission_asset=report.commission_asset or "",
            is_maker=report.is_maker,
            time_ms=report.transaction_time_ms,
            order_id=report.order_id,
        )
        return (fill, status)
    if report.execution_type is ExecutionType.REJECTED:
        return (CreateRejected(f"exchange rejected: {report.reject_reason}"), status)
    return (status,)


def _dec(data: Mapping[str, Any], key: str) -> Decimal:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{key!r} must be a decimal string, got {value!r}")
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{key!r} is not a decimal: {value!r}") from None
    if not out.is_finite() or out < 0:
        raise ValueError(f"{key!r} must be finite and ≥ 0, got {value!r}")
    return out


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool):
        raise ValueError(f"{key!r} must be an integer, got {value!r}")
    try:
        return int(str(value))
    except ValueError:
        raise ValueError(f"{key!r} must be an integer, got {value!r}") from None


def fill_from_my_trade(trade: Mapping[str, Any]) -> FillEvent:
    """A fill from one raw Binance `GET /api/v3/myTrades` element (ccxt: `trade["info"]`).

    Raises:
        ValueError: when a field is missing or malformed.
    """
    return FillEvent(
        trade_id=TradeId(_int(trade, "id")),
        quantity=_dec(trade, "qty"),
        price=_dec(trade, "price"),
        quote_quantity=_dec(trade, "quoteQty"),
        commission=_dec(trade, "commission"),
        commission_asset=str(trade.get("commissionAsset") or ""),
        is_maker=bool(trade.get("isMaker")),
        time_ms=_int(trade, "time"),
        order_id=ExchangeOrderId(_int(trade, "orderId")),
    )


def status_from_rest_order(order: Mapping[str, Any]) -> ExchangeStatus:
    """The exchange status from one raw Binance order (GET/DELETE /api/v3/order, openOrders; ccxt `info`).

    Raises:
        ValueError: when a field is missing or malformed.
    """
    try:
        status = ExchangeOrderStatus(str(order.get("status")))
    except ValueError:
        raise ValueError(f"unknown order status {order.get('status')!r}") from None
    return ExchangeStatus(
        status=status,
        cum_qty=_dec(order, "executedQty"),
        cum_quote=_dec(order, "cummulativeQuoteQty"),  # Binance's spelling, double "m"
        order_id=ExchangeOrderId(_int(order, "orderId")),
    )
