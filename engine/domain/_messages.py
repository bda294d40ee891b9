"""Frozen messages passed between actors and stored by the persistence layer.

Every price, amount, fee and balance is a `Decimal`; floats are refused at construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.domain._enums import (
    ClientOrderId,
    ExchangeOrderId,
    FallbackKind,
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
from engine.domain._values import (
    IndicatorValue,
    Label16,
    Label64,
    Label128,
    Money,
    NonNegativeDecimal,
    PairField,
    PositiveDecimal,
    RequestedDecimal,
    StorableText,
    TimeoutSeconds,
    UtcDatetime,
)

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_set = object.__setattr__
_new = object.__new__
_M = TypeVar("_M", bound=BaseModel)
NAMED_INDICATORS: tuple[str, ...] = ("rsi", "ewo", "ema", "sma")
"""Indicators that have their own field (and their own indexed database column)."""


class StrategyContext(BaseModel):
    """Why a request was made: strategy, timeframe and the indicator values at decision time."""

    model_config = _FROZEN

    # Lengths as stored (trades.strategy/timeframe); checked here so a request is refused at once, not its trade
    # row dropped by one database and kept by another.
    strategy: Label64 | None = None
    timeframe: Label16 | None = Field(default=None, description='candle timeframe, e.g. "5m"')
    rsi: IndicatorValue | None = None
    ewo: IndicatorValue | None = None
    ema: IndicatorValue | None = None
    sma: IndicatorValue | None = None
    extra: Mapping[Label64, IndicatorValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_shadowed_names(self) -> Self:
        clash = sorted(set(self.extra) & set(NAMED_INDICATORS))
        if clash:
            raise ValueError(f"indicators {clash} have named fields; do not repeat them in `extra`")
        return self

    def indicators(self) -> dict[str, Decimal]:
        """All indicator values set, named and extra, as one mapping."""
        named = {name: getattr(self, name) for name in NAMED_INDICATORS}
        values = {name: value for name, value in named.items() if value is not None}
        values.update(self.extra)
        return values


class OrderRequest(BaseModel):
    """A caller's request to buy or sell `amount` of `pair`."""

    model_config = _FROZEN

    request_id: RequestId
    pair: PairField
    side: Side
    amount: RequestedDecimal
    price: RequestedDecimal | None = None
    order_type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.GTC
    priority: Priority = Priority.ENTRY
    idempotency_key: Label128
    context: StrategyContext = Field(default_factory=StrategyContext)
    limit_timeout_s: TimeoutSeconds | None = None
    fallback: FallbackKind | None = None
    created_at: UtcDatetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.request_id:
            raise ValueError("request_id must not be empty")
        if not self.idempotency_key:
            raise ValueError("idempotency_key must not be empty")
        if self.order_type is OrderType.LIMIT_MAKER and self.time_in_force is not TimeInForce.GTC:
            raise ValueError("a limit_maker order has no time in force other than GTC")
        return self


class RequestRecord(BaseModel):
    """A request as stored with its first order's write-ahead: what crash recovery rebuilds its plan from.

    `reference_price` is the price the slippage guard compares the fallback with (the request's limit
    price, or the mid of the book when the request started). `canceled` says why the request was canceled
    by its caller (or the shutdown) while it worked: the record is stored again with it, durably, before the
    cancel leaves, so that after a restart the engine sends no fallback for a request it was told to cancel.
    `fallback_retry` and `fallback_retry_at` say that the plan waits to send its remainder again (FALLBACK_WAIT):
    the order's create failed with a retry-later error, so nothing executed; the record is stored again with
    them together with that order's rejected row, so that a restart resumes the wait.
    """

    model_config = _FROZEN

    request: OrderRequest
    reference_price: PositiveDecimal | None = None
    exchange: str = "binance"
    canceled: str | None = None
    fallback_retry: ClientOrderId | None = None
    """The order whose create failed with a retry-later error while its plan waits to re-send (schema 8). Only
    while it is the request's last order: a later one sent, the wait is over whatever this says."""
    fallback_retry_at: UtcDatetime | None = None
    """When the plan sends the remainder again (the retry delay, or the exchange's Retry-After if longer)."""

    @model_validator(mode="after")
    def _retry_whole(self) -> Self:
        if (self.fallback_retry is None) != (self.fallback_retry_at is None):
            raise ValueError("fallback_retry and fallback_retry_at go together")
        return self

    @property
    def request_id(self) -> RequestId:
        """The request's id (the natural key)."""
        return self.request.request_id

    @classmethod
    def of(cls, request: OrderRequest, reference_price: Decimal | None, exchange: str) -> Self:
        """The record of a validated request; validated again only when the reference price looks wrong.

        Built once per request on the hot path (with the first write-ahead). The price may come from the
        book's mid rather than the request: anything not finite and positive fails exactly as `cls(...)` does.
        """
        price = reference_price
        sane = price is None or (type(price) is Decimal and price.is_finite() and price > 0)
        if sane and type(request) is OrderRequest and type(exchange) is str:
            fields = {"request": request, "reference_price": reference_price, "exchange": exchange, "canceled": None,
                      "fallback_retry": None, "fallback_retry_at": None}  # fmt: skip
            return _trusted(cls, fields)
        return cls(request=request, reference_price=reference_price, exchange=exchange)


class Fill(BaseModel):
    """One execution (trade) of an order as reported by the exchange."""

    model_config = _FROZEN

    exchange: str = "binance"
    symbol: Symbol
    pair: PairField
    trade_id: TradeId
    client_order_id: ClientOrderId
    exchange_order_id: ExchangeOrderId
    side: Side
    price: PositiveDecimal
    quantity: PositiveDecimal
    quote_quantity: NonNegativeDecimal
    commission: NonNegativeDecimal
    commission_asset: str
    is_maker: bool
    time: UtcDatetime

    @classmethod
    def trusted(cls, **fields: Any) -> Self:
        """Build without validation from values already checked (see `Order.trusted`); every field required."""
        return _trusted(cls, fields)


class Order(BaseModel):
    """The engine's view of one exchange order.

    `remaining` may be omitted and is then computed as `amount - filled`; when given it must equal that.
    """

    model_config = _FROZEN

    client_order_id: ClientOrderId
    exchange_order_id: ExchangeOrderId | None = None
    exchange: str = "binance"
    request_id: RequestId
    pair: PairField
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce = TimeInForce.GTC
    role: OrderRole = OrderRole.PRIMARY
    parent_client_order_id: ClientOrderId | None = None
    status: OrderStatus
    price: PositiveDecimal | None = None
    amount: NonNegativeDecimal
    """Positive, except for an external market order placed for a quote amount (quoteOrderQty): the exchange
    reports its quantity as 0 until it fills, and the amount then follows its fills."""
    filled: NonNegativeDecimal = Decimal(0)
    remaining: Money = Decimal(0)
    """Always `amount - filled`; computed when omitted."""
    quote_filled: NonNegativeDecimal = Decimal(0)
    average_price: PositiveDecimal | None = None
    fees: Mapping[str, NonNegativeDecimal] = Field(default_factory=dict)
    created_at: UtcDatetime
    updated_at: UtcDatetime
    last_trade_id: TradeId | None = None
    slippage_capped: bool = False
    """A fallback the slippage guard capped: the market was beyond the bound when it was sent, so it went out as
    an IOC limit at the bound. Stored so that a request resumed after a restart still reports it."""
    exchange_client_order_id: str | None = Field(default=None, max_length=64)
    """The client order id the exchange knows the order by, when an amend outside the engine gave it another (order
    amend keep priority, as the Binance UI's edit); the engine follows it by its exchange order id."""
    amended_amount: NonNegativeDecimal | None = None
    """The quantity an amend outside the engine left the order (the exchange's `origQty`); `amount` stays what the
    engine placed. None when never amended."""

    @model_validator(mode="before")
    @classmethod
    def _default_remaining(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("remaining") is None and "amount" in data:
            try:
                amount = Decimal(str(data["amount"]))
                filled = Decimal(str(data.get("filled", 0)))
            except ArithmeticError:
                return data  # the field validators report the bad number clearly
            return {**data, "remaining": amount - filled}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.amount == 0 and self.role is not OrderRole.EXTERNAL:
            raise ValueError("amount must be > 0 (only an external order may be seen before its quantity is known)")
        if self.filled > self.amount:
            raise ValueError(f"filled {self.filled} exceeds amount {self.amount}")
        if self.remaining != self.amount - self.filled:
            raise ValueError(f"remaining {self.remaining} != amount {self.amount} - filled {self.filled}")
        if self.role is OrderRole.FALLBACK and self.parent_client_order_id is None:
            raise ValueError("a fallback order needs parent_client_order_id (its primary order)")
        if self.updated_at < self.created_at:
            raise ValueError("updated_at is before created_at")
        return self

    @classmethod
    def trusted(cls, **fields: Any) -> Self:
        """Build without validation from values the engine already holds validated (its own order state).

        The hot path builds a snapshot on every status change; validating each one again costs more than the
        rest of the book-keeping. Never use it for input from outside the engine: that goes through `Order(...)`.
        Every field, `remaining` included, must be given (TypeError otherwise).
        """
        return _trusted(cls, fields)


class Trade(BaseModel):
    """The execution of one request: its primary order and any fallback, summed up."""

    model_config = _FROZEN

    request_id: RequestId
    pair: PairField
    side: Side
    requested: PositiveDecimal
    filled: NonNegativeDecimal = Decimal(0)
    average_price: PositiveDecimal | None = None
    fees: Mapping[str, NonNegativeDecimal] = Field(default_factory=dict)
    status: TradeStatus
    strategy: str | None = None
    timeframe: str | None = None
    indicators: Mapping[str, Money] = Field(default_factory=dict)
    """Indicator values at decision time (`StrategyContext.indicators()`); queryable by range."""
    created_at: UtcDatetime
    closed_at: UtcDatetime | None = None
    remainder: NonNegativeDecimal = Decimal(0)
    """Quantity left unfilled at the end (reported, never silently dropped)."""
    dust: bool = False
    """True when the remainder is below the exchange's minimum and could not be traded."""
    note: StorableText = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # `filled` may exceed `requested`: the record says what the exchange executed. It never should (the engine
        # floors every order to what is left, and alerts `anomaly` when it happens), but a trade that could not be
        # stored crashed its pair actor at every start, and a record that hid the excess would lie.
        if self.filled > self.requested and self.remainder != 0:
            raise ValueError(f"filled {self.filled} exceeds requested {self.requested} with a remainder left")
        if self.closed_at is not None and self.closed_at < self.created_at:
            raise ValueError("closed_at is before created_at")
        return self

    @property
    def received(self) -> Decimal:
        """The base asset a buy added to the account: `filled` less the fees paid in the base asset (Binance takes
        a buy's fee from what it bought unless BNB pays it). Sell this, not `filled`, to close the position: a
        sell of `filled` is refused for want of balance. For a sell, what was sold (`filled`)."""
        if self.side is Side.SELL:
            return self.filled
        base = str(self.pair).split("/", 1)[0]
        return self.filled - self.fees.get(base, Decimal(0))

    @classmethod
    def trusted(cls, **fields: Any) -> Self:
        """Build without validation from values the engine already holds validated (see `Order.trusted`)."""
        return _trusted(cls, fields)


class ErrorRecord(BaseModel):
    """One error worth keeping: what was attempted, what the exchange said, and where."""

    model_config = _FROZEN

    operation: StorableText
    exchange_code: int | None = None
    message: StorableText
    """What the exchange (or the engine) said; anything no database takes is replaced, never refused."""
    context: Mapping[StorableText, StorableText] = Field(default_factory=dict)
    pair: PairField | None = None
    client_order_id: ClientOrderId | None = None
    time: UtcDatetime


class IndicatorSnapshot(BaseModel):
    """Indicator values seen for a request at a point in time."""

    model_config = _FROZEN

    request_id: RequestId
    pair: PairField
    timeframe: str | None = None
    time: UtcDatetime
    values: Mapping[str, Money] = Field(default_factory=dict)


_SHAPES: dict[type[BaseModel], tuple[tuple[str, ...], set[str]]] = {}
"""Per model: its field names in order, and as the set every trusted instance copies as its fields set."""


def _trusted(cls: type[_M], fields: dict[str, Any]) -> _M:
    """What `model_construct` does, for a complete set of fields, without its per-field Python loop."""
    shape = _SHAPES.get(cls)
    if shape is None:
        names = tuple(cls.__pydantic_fields__)
        shape = _SHAPES[cls] = (names, set(names))
    # The callers list the fields in declaration order: one tuple comparison (then the set check) decides.
    if tuple(fields) != shape[0] and fields.keys() != cls.__pydantic_fields__.keys():
        raise TypeError(f"a trusted {cls.__name__} needs every field; got {sorted(fields)}")
    model = _new(cls)  # what `cls.__new__` is for a model (pydantic defines no `__new__`)
    _set(model, "__dict__", fields)
    _set(model, "__pydantic_fields_set__", shape[1].copy())
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model
