"""Identifier types and enumerations shared by every component.

The enum values are what is stored in the database and written to the spool, so they must never change
once rows exist; add new members instead.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import NewType

ClientOrderId = NewType("ClientOrderId", str)
ExchangeOrderId = NewType("ExchangeOrderId", int)
TradeId = NewType("TradeId", int)
RequestId = NewType("RequestId", str)
Pair = NewType("Pair", str)
"""A market in "BASE/QUOTE" form, e.g. "BTC/USDT" (ccxt's unified symbol)."""
Symbol = NewType("Symbol", str)
"""A market in Binance's wire form, e.g. "BTCUSDT"."""


class Side(StrEnum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        """The other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    """Order types the engine sends (Binance LIMIT, MARKET, LIMIT_MAKER)."""

    LIMIT = "limit"
    MARKET = "market"
    LIMIT_MAKER = "limit_maker"


class TimeInForce(StrEnum):
    """Binance time in force."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    """Life-cycle state of one exchange order as the engine knows it."""

    PENDING_SUBMIT = "pending_submit"
    """Intent written to the database; the request has not left the process."""
    SUBMITTED = "submitted"
    """Sent; the outcome is unknown until an ack, a report or a lookup by client order id."""
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    FILLED = "filled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True once the order can never change again on the exchange."""
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        """True while the order is, or may be, live on the exchange (every non-terminal state).

        PENDING_SUBMIT and SUBMITTED count as open: after a crash either may exist at Binance, so
        reconciliation has to look at them.
        """
        return self not in _TERMINAL


_TERMINAL = frozenset({OrderStatus.CANCELED, OrderStatus.FILLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})
OPEN_STATUSES: frozenset[OrderStatus] = frozenset(s for s in OrderStatus if s.is_open)
"""Every non-terminal status (the "open orders" query)."""
TERMINAL_STATUSES: frozenset[OrderStatus] = _TERMINAL


class Priority(IntEnum):
    """Gateway queue priority; lower values go first."""

    CANCEL = 0
    FALLBACK = 1
    EXIT = 2
    ENTRY = 3


class FallbackKind(StrEnum):
    """What to do with the unfilled remainder of a limit order when its timeout expires."""

    MARKET = "market"
    IOC_LIMIT = "ioc_limit"
    NONE = "none"


class OrderRole(StrEnum):
    """Why an order exists."""

    PRIMARY = "primary"
    """The limit leg of a request."""
    FALLBACK = "fallback"
    """The market / IOC leg sent for the remainder of a primary order."""
    EXTERNAL = "external"
    """Found on the exchange, created outside the engine."""


class TradeStatus(StrEnum):
    """Outcome of one request's execution (primary order plus any fallback)."""

    OPEN = "open"
    FILLED = "filled"
    PARTIAL = "partial"
    CANCELED = "canceled"
    FAILED = "failed"
