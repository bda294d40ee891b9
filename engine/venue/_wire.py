"""Binance's REST wire format ↔ exact values.

ccxt's unified structures carry floats; money must not. The engine therefore calls ccxt's implicit raw
methods (signing, transport and error handling stay ccxt's) and reads Binance's own JSON here, where every
price and quantity is a decimal string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.domain import ClientOrderId, ExchangeOrderId, OrderStatus, Side, Symbol, TradeId

__all__ = [
    "BINANCE_STATUS",
    "OrderSnapshot",
    "WireFill",
    "WireFormatError",
    "format_decimal",
    "parse_order",
    "side_param",
]

BINANCE_STATUS: Mapping[str, OrderStatus] = {
    "NEW": OrderStatus.OPEN,
    "PENDING_NEW": OrderStatus.SUBMITTED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.PENDING_CANCEL,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}


class WireFormatError(ValueError):
    """A response from the exchange that does not have the documented shape."""


def format_decimal(value: Decimal) -> str:
    """Binance's parameter form: plain digits, no exponent, no trailing zeros (``0.00078``, ``55.32``)."""
    if not value.is_finite():
        raise ValueError(f"not a finite number: {value}")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def side_param(side: Side) -> str:
    """BUY or SELL."""
    return side.value.upper()


def _dec(raw: Mapping[str, Any], key: str) -> Decimal:
    # Every amount, price and fee the exchange sends is a finite, non-negative decimal string: anything else is an
    # unreadable answer, never a NaN that raises deep in the state machine after half the answer was applied.
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise WireFormatError(f"field {key!r} is not a decimal string")
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise WireFormatError(f"field {key!r} is not a decimal string") from None
    if not out.is_finite() or out < 0:
        raise WireFormatError(f"field {key!r} must be finite and not negative, got {value!r}")
    return out


def _int(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or value is None:
        raise WireFormatError(f"field {key!r} missing or not an integer")
    if isinstance(value, float):
        raise WireFormatError(f"field {key!r} is not an integer")  # Binance's ids and times are JSON integers
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise WireFormatError(f"field {key!r} is not an integer") from None


def _ms_to_dt(ms: int) -> datetime:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise WireFormatError(f"time {ms!r} is out of range") from None


@dataclass(frozen=True)
class WireFill:
    """One fill inside a FULL order response (no time or maker flag there: Binance omits them)."""

    trade_id: TradeId
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str


@dataclass(frozen=True)
class OrderSnapshot:
    """The exchange's view of one order at one moment (REST order/openOrders/cancel response)."""

    symbol: Symbol
    order_id: ExchangeOrderId
    client_order_id: ClientOrderId
    status: OrderStatus
    side: Side
    order_type: str
    price: Decimal
    orig_qty: Decimal
    executed_qty: Decimal
    cum_quote: Decimal
    time: datetime
    fills: tuple[WireFill, ...] = ()


def parse_order(raw: Mapping[str, Any], *, client_order_id_key: str = "clientOrderId") -> OrderSnapshot:
    """Parse a RESULT/FULL order response, a query response or a cancel response.

    For a cancel response pass ``client_order_id_key="origClientOrderId"``: there ``clientOrderId`` is the cancel
    request's own id, not the order's (binance-spot.md §1.4).
    """
    status_text = str(raw.get("status", ""))
    status = BINANCE_STATUS.get(status_text)
    if status is None:
        raise WireFormatError(f"unknown order status {status_text!r}")
    side_text = str(raw.get("side", "")).lower()
    if side_text not in ("buy", "sell"):
        raise WireFormatError(f"unknown side {raw.get('side')!r}")
    time_ms = raw.get("transactTime") or raw.get("updateTime") or raw.get("time") or 0
    fills_raw: Sequence[Mapping[str, Any]] = raw.get("fills") or ()
    if not isinstance(fills_raw, list | tuple) or not all(isinstance(f, Mapping) for f in fills_raw):
        raise WireFormatError("field 'fills' is not a list of fills")
    fills = tuple(
        WireFill(
            trade_id=TradeId(_int(f, "tradeId")),
            price=_dec(f, "price"),
            quantity=_dec(f, "qty"),
            commission=_dec(f, "commission"),
            commission_asset=str(f.get("commissionAsset", "")),
        )
        for f in fills_raw
    )
    return OrderSnapshot(
        symbol=Symbol(str(raw.get("symbol", ""))),
        order_id=ExchangeOrderId(_int(raw, "orderId")),
        client_order_id=ClientOrderId(str(raw.get(client_order_id_key, ""))),
        status=status,
        side=Side(side_text),
        order_type=str(raw.get("type", "")),
        price=_dec(raw, "price"),
        orig_qty=_dec(raw, "origQty"),
        executed_qty=_dec(raw, "executedQty"),
        cum_quote=_dec(raw, "cummulativeQuoteQty"),
        time=_ms_to_dt(_int({"time": time_ms}, "time")),
        fills=fills,
    )
