"""The typed user-data reports (binance-spot.md §7) that `parse_user_data` returns, and `BadFrame`, the only
exception it raises. Frozen, slotted dataclasses; quantities, prices and balances are `Decimal`. Re-exported by
`_reports`, where the parsing lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from engine.domain import ClientOrderId, ExchangeOrderId, Side, Symbol, TradeId

__all__ = [
    "AccountPosition",
    "ApiResponse",
    "BadFrame",
    "BalanceEntry",
    "BalanceUpdate",
    "ExchangeOrderStatus",
    "ExecutionReport",
    "ExecutionType",
    "ServerShutdown",
    "StreamTerminated",
    "UnknownEvent",
    "UserDataReport",
]


_EXCERPT = 160


class BadFrame(ValueError):
    """A frame that cannot be parsed; `excerpt` is a bounded, printable slice of it."""

    def __init__(self, reason: str, raw: bytes | str) -> None:
        text = raw if isinstance(raw, str) else raw[: _EXCERPT * 4].decode("utf-8", "replace")
        excerpt = text[:_EXCERPT].encode("ascii", "backslashreplace").decode("ascii")
        super().__init__(f"bad frame: {reason} (frame starts {excerpt!r})")
        self.reason = reason
        self.excerpt = excerpt


class ExecutionType(StrEnum):
    """`x`: what just happened to the order."""

    NEW = "NEW"
    CANCELED = "CANCELED"
    REPLACED = "REPLACED"
    REJECTED = "REJECTED"
    TRADE = "TRADE"
    EXPIRED = "EXPIRED"
    TRADE_PREVENTION = "TRADE_PREVENTION"


class ExchangeOrderStatus(StrEnum):
    """`X` / REST `status`: the order's status at Binance."""

    NEW = "NEW"
    PENDING_NEW = "PENDING_NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    PENDING_CANCEL = "PENDING_CANCEL"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """One `executionReport` (§7.1), typed. Quantities and prices are Decimals."""

    event_time_ms: int
    symbol: Symbol
    client_order_id: ClientOrderId
    """`c`: on a cancel this is the CANCEL request's id; see `order_client_id`."""
    orig_client_order_id: ClientOrderId | None
    """`C`: the canceled order's own id (None when Binance sends "")."""
    side: Side
    order_type: str
    """Binance's type as sent (LIMIT, MARKET, LIMIT_MAKER, STOP_LOSS, …)."""
    time_in_force: str
    quantity: Decimal
    price: Decimal
    execution_type: ExecutionType
    order_status: ExchangeOrderStatus
    reject_reason: str
    order_id: ExchangeOrderId
    last_qty: Decimal
    cum_qty: Decimal
    last_price: Decimal
    commission: Decimal
    commission_asset: str | None
    transaction_time_ms: int
    trade_id: TradeId | None
    """None when Binance sends -1 (not a trade)."""
    is_maker: bool
    cum_quote: Decimal
    last_quote: Decimal
    is_working: bool
    creation_time_ms: int
    expiry_reason: str | None
    subscription_id: int | None

    @property
    def order_client_id(self) -> ClientOrderId:
        """The id of the order this report is about: `C` on a cancel (where `c` is the cancel's id)."""
        if self.execution_type is ExecutionType.CANCELED and self.orig_client_order_id:
            return self.orig_client_order_id
        return self.client_order_id

    @property
    def is_trade(self) -> bool:
        """True when the report carries a fill (`x == TRADE` with a trade id and quantity)."""
        return self.execution_type is ExecutionType.TRADE and self.trade_id is not None and self.last_qty > 0


@dataclass(frozen=True, slots=True)
class BalanceEntry:
    """One asset of an `outboundAccountPosition`."""

    asset: str
    free: Decimal
    locked: Decimal


@dataclass(frozen=True, slots=True)
class AccountPosition:
    """`outboundAccountPosition`: the assets that may have changed, with their new balances."""

    event_time_ms: int
    last_update_ms: int
    balances: tuple[BalanceEntry, ...]


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    """`balanceUpdate`: a deposit, withdrawal or transfer."""

    event_time_ms: int
    asset: str
    delta: Decimal
    clear_time_ms: int


@dataclass(frozen=True, slots=True)
class StreamTerminated:
    """`eventStreamTerminated`: the subscription is gone; resubscribe and reconcile."""

    event_time_ms: int
    subscription_id: int | None


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    """`serverShutdown`: the server is going away; reconnect and reconcile."""

    event_time_ms: int


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A WS API response frame (e.g. the subscription ack or its failure)."""

    request_id: str | None
    status: int
    error_code: int | None
    error_message: str | None

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event type this engine does not handle (listStatus, externalLockUpdate, future ones)."""

    event_type: str
    event_time_ms: int | None


UserDataReport = (
    ExecutionReport | AccountPosition | BalanceUpdate | StreamTerminated | ServerShutdown | ApiResponse | UnknownEvent
)
