"""Messages of the execution plan: configuration, order specs, events in, commands out, and the result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from engine.domain import (
    ClientOrderId,
    FallbackKind,
    OrderRequest,
    OrderRole,
    OrderStatus,
    OrderType,
    Priority,
    RequestId,
    Side,
    Symbol,
    TimeInForce,
    TradeId,
    TradeStatus,
)
from engine.exchange import ExchangeError
from engine.execution._guards import Book, SlippageAction
from engine.execution._reasons import FAILED_REASONS, ResultReason

__all__ = [
    "Abort",
    "CancelFailed",
    "CancelOrder",
    "ExecutionCommand",
    "ExecutionConfig",
    "ExecutionEvent",
    "ExecutionResult",
    "LegAcked",
    "LegClosed",
    "LegFailed",
    "LegFilled",
    "LegNotCreated",
    "LegResult",
    "OrderSpec",
    "PlaceOrder",
    "PriceSource",
    "PriceUpdate",
    "ReportResult",
    "Tick",
    "choose_limit_price",
]


class PriceSource(StrEnum):
    """Where the limit price comes from when the request has none."""

    MAKER = "maker"
    """Best price on the order's own side (bid for a buy): rests on the book, pays maker fees."""
    TAKER = "taker"
    """Best price on the other side (ask for a buy): crosses the spread, fills at once if it can."""


def choose_limit_price(
    side: Side, book: Book, source: PriceSource, order_type: OrderType | None = None
) -> Decimal | None:
    """The limit price for a request without one: the best bid/ask on the configured side of the book. A
    `LIMIT_MAKER` always takes its own side: at the taker's price a post-only order crosses and is rejected."""
    maker = source is PriceSource.MAKER or order_type is OrderType.LIMIT_MAKER
    return book.maker_price(side) if maker else book.taker_price(side)


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    """Policy knobs of the limit → fallback execution (per engine; a request may override two of them)."""

    limit_timeout_ms: int = 30_000
    fallback: FallbackKind = FallbackKind.MARKET
    max_slippage: Decimal = Decimal("0.01")
    slippage_action: SlippageAction = SlippageAction.REFUSE
    price_source: PriceSource = PriceSource.MAKER
    max_fallback_attempts: int = 3
    """Placements of the fallback in total; a re-placement happens only when nothing was executed."""
    retry_delay_ms: int = 1_000
    """Wait before re-placing after a retry-later failure without Retry-After."""
    cancel_retry_ms: int = 2_000
    """Wait before re-sending a failed cancel; it doubles with each further failure of the same plan."""
    cancel_retry_max_ms: int = 60_000
    """The longest wait between cancel retries (a longer Retry-After from the exchange still wins)."""
    fallback_after_external_cancel: bool = False
    """If the limit is canceled outside the engine, still send the fallback (default: stop and say so)."""
    id_namespace: str = ""
    """The database's client order id namespace (`engine.exchange.client_order_id`), read at start."""
    id_tag: str = ""
    """The tag of the database's client order ids (`engine.exchange.is_own_id`), read at start."""

    def cancel_retry_delay_ms(self, failures: int, retry_after_s: float | None = None) -> int:
        """The wait after the `failures`-th failed cancel (1 = the first): doubling from `cancel_retry_ms` up
        to `cancel_retry_max_ms`, and never shorter than the exchange's Retry-After."""
        delay = min(self.cancel_retry_ms * 2 ** min(max(failures - 1, 0), 30), self.cancel_retry_max_ms)
        delay = max(delay, self.cancel_retry_ms)  # a max below the base does not shorten the first wait
        return delay if retry_after_s is None else max(delay, int(retry_after_s * 1000))

    def for_request(self, request: OrderRequest) -> ExecutionConfig:
        """This configuration with the request's own limit timeout and fallback (an IOC or FOK limit: none)."""
        config = self
        if request.limit_timeout_s is not None:
            config = replace(config, limit_timeout_ms=int(request.limit_timeout_s * 1000))
        if request.fallback is not None:
            config = replace(config, fallback=request.fallback)
        elif request.time_in_force in (TimeInForce.IOC, TimeInForce.FOK) and request.order_type is not OrderType.MARKET:
            config = replace(config, fallback=FallbackKind.NONE)  # "at this price now or not at all": not at market
        return config

    def __post_init__(self) -> None:
        if self.limit_timeout_ms < 0 or self.max_fallback_attempts < 1 or self.max_slippage < 0:
            raise ValueError("limit_timeout_ms ≥ 0, max_fallback_attempts ≥ 1 and max_slippage ≥ 0 required")


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """Everything the gateway needs to send one order."""

    client_order_id: ClientOrderId
    symbol: Symbol
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    time_in_force: TimeInForce | None
    role: OrderRole
    priority: Priority
    parent_client_order_id: ClientOrderId | None = None
    slippage_capped: bool = False
    """Sent by the fallback step with the market beyond the slippage bound (an IOC at the bound)."""

    @property
    def resting(self) -> bool:
        """A limit that rests on the book until filled or canceled (LIMIT or LIMIT_MAKER, not IOC/FOK)."""
        resting_type = self.order_type in (OrderType.LIMIT, OrderType.LIMIT_MAKER)
        return resting_type and self.time_in_force not in (TimeInForce.IOC, TimeInForce.FOK)


# ---- commands -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Send `spec` (write its intent first)."""

    spec: OrderSpec


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel the order by client order id, at cancel priority."""

    client_order_id: ClientOrderId
    symbol: Symbol
    reason: str
    priority: Priority = Priority.CANCEL


@dataclass(frozen=True, slots=True)
class LegResult:
    """One order of the execution."""

    client_order_id: ClientOrderId
    role: OrderRole
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    filled: Decimal
    quote_filled: Decimal
    status: OrderStatus
    error: str | None = None

    @property
    def average_price(self) -> Decimal | None:
        """Quote / base over what this leg filled."""
        return self.quote_filled / self.filled if self.filled > 0 else None


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """The outcome of one request: both legs, totals, what is left and why."""

    request_id: RequestId
    status: TradeStatus
    requested: Decimal
    filled: Decimal
    average_price: Decimal | None
    fees: Mapping[str, Decimal]
    remainder: Decimal
    """`requested − filled`: never silently dropped."""
    dust: bool
    """True when the remainder is below what the exchange accepts (step, min qty, min notional)."""
    legs: tuple[LegResult, ...]
    reason: ResultReason
    detail: str
    slippage_capped: bool = False
    details: Mapping[str, str] = field(default_factory=dict)
    """The numbers of `detail` for code, exact plain decimals: a filter failure's (`Violation.details`), a dust
    remainder's `remainder` (with the violation's, when one made it dust), a slippage refusal's
    (`SlippageDecision.details`: `reference_price`, `bound`, `max_slippage`, `market_price`, `slippage`)."""


@dataclass(frozen=True, slots=True)
class ReportResult:
    """The execution is over: store and announce `result`."""

    result: ExecutionResult


ExecutionCommand = PlaceOrder | CancelOrder | ReportResult


# ---- events ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegAcked:
    """The exchange acknowledged a leg."""

    client_order_id: ClientOrderId


@dataclass(frozen=True, slots=True)
class LegFilled:
    """A fill of a leg (as applied by the order state machine; duplicates are ignored here too)."""

    client_order_id: ClientOrderId
    trade_id: TradeId
    quantity: Decimal
    price: Decimal
    commission: Decimal = Decimal(0)
    commission_asset: str = ""


@dataclass(frozen=True, slots=True)
class LegClosed:
    """A leg reached a terminal status. `cum_qty`/`cum_quote` are the exchange's cumulative figures
    (`OrderState.amount − OrderState.remaining`), so the remainder is right even before missing fills
    have been fetched."""

    client_order_id: ClientOrderId
    status: OrderStatus
    cum_qty: Decimal
    cum_quote: Decimal = Decimal(0)
    prevented: bool = False
    """Expired by the exchange's self-trade prevention: it met another order of this account (EXPIRED_IN_MATCH)."""


@dataclass(frozen=True, slots=True)
class LegFailed:
    """Creating a leg failed definitively (rejected, retry later, stop trading). Unknown outcomes are not
    reported here: the resolver reports `LegAcked` or `LegNotCreated`."""

    client_order_id: ClientOrderId
    error: ExchangeError


@dataclass(frozen=True, slots=True)
class LegNotCreated:
    """The resolver concluded the leg was never created: it is re-sent with the same client order id."""

    client_order_id: ClientOrderId


@dataclass(frozen=True, slots=True)
class LegAmended:
    """The leg's order was amended outside the engine (its quantity reduced): someone intervened, as with an outside
    cancel; the order is followed to its end, and what it did not fill gets no fallback unless configured."""

    client_order_id: ClientOrderId


@dataclass(frozen=True, slots=True)
class CancelFailed:
    """A cancel of a leg failed."""

    client_order_id: ClientOrderId
    error: ExchangeError


@dataclass(frozen=True, slots=True)
class Abort:
    """The caller cancels the request: cancel the working leg and send no fallback."""

    reason: str = "canceled by the caller"


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed (from the clock/ticker actor)."""


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    """The latest book of the pair; `volatile` from the pair's `VolatilityMonitor`."""

    book: Book
    volatile: bool = False


ExecutionEvent = (
    LegAcked
    | LegFilled
    | LegClosed
    | LegFailed
    | LegNotCreated
    | LegAmended
    | CancelFailed
    | Tick
    | PriceUpdate
    | Abort
)


@dataclass(slots=True)
class _Leg:
    spec: OrderSpec
    fills: dict[TradeId, tuple[Decimal, Decimal]] = field(default_factory=dict)  # qty, quote
    fees: dict[str, Decimal] = field(default_factory=dict)
    closed: OrderStatus | None = None
    cum_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    error: str | None = None
    known_qty: Decimal = Decimal(0)
    """Sum of `fills` quantities, kept as fills are added (constant time per fill, however many)."""
    known_quote: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        self.known_qty = sum((q for q, _ in self.fills.values()), Decimal(0))
        self.known_quote = sum((v for _, v in self.fills.values()), Decimal(0))

    def add_fill(self, trade_id: TradeId, qty: Decimal, quote: Decimal) -> bool:
        """Record a fill once (by trade id) and only within the order's quantity; True when recorded."""
        if trade_id in self.fills or self.known_qty + qty > self.spec.quantity:
            return False
        self.fills[trade_id] = (qty, quote)
        self.known_qty += qty
        self.known_quote += quote
        return True

    @property
    def filled(self) -> Decimal:
        return max(self.cum_qty, self.known_qty)

    @property
    def quote(self) -> Decimal:
        return max(self.cum_quote, self.known_quote)

    def result(self) -> LegResult:
        status = self.closed or (OrderStatus.REJECTED if self.error else OrderStatus.OPEN)
        return LegResult(
            self.spec.client_order_id, self.spec.role, self.spec.order_type, self.spec.quantity,
            self.spec.price, self.filled, self.quote, status, self.error,
        )  # fmt: skip


def _summarize(
    request: OrderRequest,
    legs: list[_Leg],
    reason: ResultReason,
    detail: str,
    *,
    dust: bool,
    capped: bool,
    details: Mapping[str, str] | None = None,
    below_step: bool = True,
) -> ExecutionResult:
    """The result of an execution from its legs (`ExecutionPlan` calls it when it finishes); `below_step`: what is
    left is less than the lot step (no order could ever carry it)."""
    filled = sum((leg.filled for leg in legs), Decimal(0))
    quote = sum((leg.quote for leg in legs), Decimal(0))
    fees: dict[str, Decimal] = {}
    for leg in legs:
        for asset, amount in leg.fees.items():
            fees[asset] = fees.get(asset, Decimal(0)) + amount
    remainder = request.amount - filled
    # what the lot step cut off the request is dust too, even when everything tradable filled
    dust = dust or (remainder > 0 and reason is ResultReason.FILLED)
    # Filled means all of it that any order could carry. A remainder the filters refuse but a lot step could carry
    # (below the minimum notional, say) is dust too, but the trade is partial: 0.00002 of 0.0001 is not "filled".
    if filled > 0 and (remainder <= 0 or reason is ResultReason.FILLED or (dust and below_step)):
        status = TradeStatus.FILLED
    elif filled > 0:
        status = TradeStatus.PARTIAL
    elif reason in FAILED_REASONS:
        status = TradeStatus.FAILED
    else:
        status = TradeStatus.CANCELED
    return ExecutionResult(
        request_id=request.request_id,
        status=status,
        requested=request.amount,
        filled=filled,
        average_price=quote / filled if filled > 0 else None,
        fees=fees,
        remainder=remainder,
        dust=dust,
        legs=tuple(leg.result() for leg in legs),
        reason=reason,
        detail=detail,
        slippage_capped=capped,
        details=dict(details or {}),
    )
