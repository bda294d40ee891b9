"""What the control API accepts and returns: pydantic request bodies and JSON views of engine objects.

Amounts and prices travel as decimal strings ("0.01"): a JSON float has already lost precision by the time
it is parsed, so one is refused with a message saying so rather than converted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from engine.api import Accepted, EngineEvent, Refusal, RefusalReason
from engine.domain import OPEN_STATUSES, Fill, Order, OrderStatus, StrategyContext, Trade, TradeStatus
from engine.service._plain import jsonable

if TYPE_CHECKING:
    from engine.api._queries import OrderDetail

__all__ = [
    "DECIMAL_PATTERN",
    "POSITIVE_DECIMAL_PATTERN",
    "ApiDecimal",
    "OrderBody",
    "OrdersQuery",
    "TradesQuery",
    "detail_json",
    "event_json",
    "field_errors",
    "order_json",
    "outcome_json",
    "parse_pair",
    "refusal_fields",
    "refusal_status",
    "trade_json",
]

PAIR_PATTERN = r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$"
POSITIVE_DECIMAL_PATTERN = r"^(?=[0-9.]*[1-9])[0-9]{1,20}(\.[0-9]{1,20})?$"
"""What the OpenAPI document promises is accepted (the validator takes a little more: surrounding blanks, ints)."""
DECIMAL_PATTERN = r"^-?[0-9]{1,20}(\.[0-9]{1,20})?$"
MAX_LIMIT_TIMEOUT_S = Decimal(86400)
_PAIR_RE = re.compile(PAIR_PATTERN)
_UNPROCESSABLE = frozenset({RefusalReason.INVALID_REQUEST, RefusalReason.FILTER_FAILURE, RefusalReason.NOT_WHITELISTED})


def _decimal_string(value: Any) -> Decimal:
    # bool is an int subclass: `true` must not become 1.
    if isinstance(value, bool) or not isinstance(value, str | int):
        kind = "a JSON float" if isinstance(value, float) else type(value).__name__
        raise ValueError(f'send decimals as strings, e.g. "0.01" ({kind} is not accepted: floats lose precision)')
    try:
        out = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("not a decimal number") from None
    if not out.is_finite() or out <= 0:
        raise ValueError("must be a finite number greater than 0")
    return out


ApiDecimal = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    WithJsonSchema({"type": "string", "pattern": POSITIVE_DECIMAL_PATTERN, "examples": ["0.01"]}),
]
"""A positive decimal sent as a JSON string (or integer)."""


class OrderBody(BaseModel):
    """`POST /orders`: one order request."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    pair: str = Field(pattern=PAIR_PATTERN, description='market in BASE/QUOTE form, e.g. "BTC/USDT"')
    side: Literal["buy", "sell"]
    amount: ApiDecimal = Field(description="base-asset amount as a decimal string")
    price: ApiDecimal | None = Field(
        default=None,
        description=(
            "limit price (a limit without one rests at the best bid/ask); with a market order, a bound: sent as an "
            "IOC limit at `execution.max_slippage_pct` beyond it"
        ),
    )
    order_type: Literal["limit", "market", "limit_maker"] = "limit"
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$", description="same key → same order"
    )
    context: StrategyContext | None = Field(default=None, description="strategy, timeframe and indicator values")
    limit_timeout: ApiDecimal | None = Field(
        default=None, description="seconds before the fallback, up to 86400 (default: config)"
    )
    fallback: Literal["market", "ioc_limit", "none"] | None = None

    @field_validator("limit_timeout")
    @classmethod
    def _timeout_bound(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value > MAX_LIMIT_TIMEOUT_S:
            raise ValueError(f"at most {MAX_LIMIT_TIMEOUT_S} seconds")
        return value


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Each problem as ``{"field": "amount", "message": "..."}``; the input itself is never echoed."""
    out = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        named = re.match(r"^([a-z_]+): (.*)$", msg, re.DOTALL)
        if not loc and named:
            loc, msg = named.group(1), named.group(2)
        out.append({"field": loc or "body", "message": msg})
    return out


def parse_pair(text: str) -> str | None:
    """A pair from a URL or query: "BTC/USDT", "BTC-USDT" or "BTC_USDT"; None when malformed."""
    pair = text.strip().upper().replace("-", "/").replace("_", "/")
    return pair if _PAIR_RE.match(pair) else None


def refusal_status(refusal: Refusal) -> int:
    """422 when the request itself cannot be executed as written, 409 when the engine's state refused it."""
    return 422 if refusal.reason in _UNPROCESSABLE else 409


def order_json(order: Order) -> dict[str, Any]:
    """An order as JSON-ready data (decimals as plain exact strings, "0.01" not "0.01000"; times ISO 8601 UTC)."""
    return jsonable(order)


_FILTER_FIELDS = {
    "PRICE_FILTER": "price",
    "PERCENT_PRICE": "price",
    "PERCENT_PRICE_BY_SIDE": "price",
    "LOT_SIZE": "amount",
    "MARKET_LOT_SIZE": "amount",
    "NOTIONAL": "amount",
    "MIN_NOTIONAL": "amount",
}
_NAMED = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*): (.*)$", re.DOTALL)


def refusal_fields(refusal: Refusal) -> list[dict[str, str]]:
    """For a refusal about the request itself (422), the field it is about; empty for the engine's state."""
    message = refusal.message
    if refusal.reason is RefusalReason.NOT_WHITELISTED:
        return [{"field": "pair", "message": "not in the pair whitelist"}]
    if refusal.reason is RefusalReason.FILTER_FAILURE:
        # The refusal's details name the filter (the message may start otherwise: "remainder … not tradable: …").
        name = refusal.details.get("filter") or message.split(":", 1)[0].strip()
        return [{"field": _FILTER_FIELDS.get(name, "amount"), "message": message}]
    if refusal.reason is RefusalReason.INVALID_REQUEST:
        named = _NAMED.match(message)
        field, text = (named.group(1), named.group(2)) if named else ("body", message)
        return [{"field": field, "message": text}]
    return []


def outcome_json(outcome: Accepted | Refusal) -> dict[str, Any]:
    """The body answering `POST /orders`. A duplicate (a known idempotency key) also says what the original request
    did: `trade` (its outcome once finished, else null) and `latest` (its most recent order now: the fallback once
    one was sent); `order` is its first accepted order, which after a timed-out limit reads canceled."""
    if isinstance(outcome, Accepted):
        out: dict[str, Any] = {"accepted": True, "duplicate": outcome.duplicate, "order": order_json(outcome.order)}
        if outcome.duplicate:
            out["trade"] = None if outcome.trade is None else trade_json(outcome.trade)
            out["latest"] = None if outcome.latest is None else order_json(outcome.latest)
        return out
    out = {
        "accepted": False,
        "error": outcome.reason.value,
        "message": outcome.message,
        "details": dict(outcome.details),
    }
    if fields := refusal_fields(outcome):
        out["fields"] = fields
    return out


def event_json(event: EngineEvent) -> dict[str, Any]:
    """An engine event as JSON-ready data (what `GET /events` streams)."""
    return {
        "kind": event.kind.value,
        "pair": event.pair,
        "time": event.time.isoformat(),
        "request_id": event.request_id,
        "client_order_id": event.client_order_id,
        "order": None if event.order is None else order_json(event.order),
        "fill": None if event.fill is None else jsonable(event.fill),
        "trade": None if event.trade is None else jsonable(event.trade),
        "message": event.message,
    }


# ---- query strings (GET /orders, GET /trades) ---------------------------------------------------------------

_AGE_RE = re.compile(r"^(\d{1,9})([smhdw])$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_LIMIT = 1000


def _when(value: Any) -> datetime:
    """An ISO 8601 time (UTC when it has no zone) or an age such as 30m, 12h, 7d (before now)."""
    if not isinstance(value, str):
        raise ValueError("an ISO time (2026-01-31T12:00:00Z) or an age (30m, 12h, 7d)")
    text = value.strip()
    age = _AGE_RE.match(text)
    try:
        if age:
            return datetime.now(UTC) - timedelta(**{_AGE_UNITS[age.group(2)]: int(age.group(1))})
        parsed = datetime.fromisoformat(text)
        # Inside the try: converting a time at the calendar's edge (0001-01-01T00:00+01:00) to UTC overflows.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("an ISO time (2026-01-31T12:00:00Z) or an age (30m, 12h, 7d)") from None


def _pair_query(value: Any) -> str:
    pair = parse_pair(value) if isinstance(value, str) else None
    if pair is None:
        raise ValueError("a pair is BASE/QUOTE in upper case, e.g. BTC/USDT")
    return pair


def _csv(value: Any) -> Any:
    """`status=open,filled` and repeated `status=open&status=filled` both become a list (an empty value stays,
    to be refused: `status=` filtering nothing would silently return everything)."""
    items = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            out.extend(p.strip() for p in item.split(","))
        else:
            out.append(item)
    return out


def _indicator(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError("a decimal number, e.g. 30")
    try:
        out = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError("a decimal number, e.g. 30") from None
    if not out.is_finite():
        raise ValueError("must be a finite number")
    return out


When = Annotated[
    datetime, BeforeValidator(_when), WithJsonSchema({"type": "string", "examples": ["12h", "2026-01-31T12:00:00Z"]})
]
QueryPair = Annotated[str, BeforeValidator(_pair_query), Field(json_schema_extra={"examples": ["BTC/USDT"]})]
Indicator = Annotated[
    Decimal, BeforeValidator(_indicator), WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN})
]


def _known_statuses(value: list[str] | None, known: list[str]) -> list[str] | None:
    if value is not None and (not value or any(v not in known for v in value)):
        raise ValueError(f"each status is one of {', '.join(known)}")
    return value


class _Query(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    pair: QueryPair | None = Field(default=None, description="only this pair, e.g. BTC/USDT")
    since: When | None = Field(default=None, description="created at or after: ISO time or age (30m, 12h, 7d)")
    until: When | None = Field(default=None, description="created before: ISO time or age")
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT, description="at most this many, newest first")

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            fields = cls.model_fields
            out: dict[str, Any] = {}
            for key, value in data.items():
                if key == "status":
                    out[key] = _csv(value)
                elif isinstance(value, list) and value and key in fields:
                    out[key] = value[-1]  # a repeated single-valued parameter: the last one wins
                else:
                    out[key] = value
            return out
        return data

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until: must be after since")
        return self


class OrdersQuery(_Query):
    """`GET /orders` filters. Any of `status`, `since`, `until`, `request_id`, `limit` reads stored orders."""

    status: list[str] | None = Field(
        default=None,
        description="statuses, comma-separated or repeated; open-any = every non-terminal status",
        json_schema_extra={"items": {"type": "string", "enum": [*(s.value for s in OrderStatus), "open-any"]}},
    )
    request_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")

    @field_validator("status")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        return _known_statuses(value, [*(s.value for s in OrderStatus), "open-any"])

    def statuses(self) -> list[OrderStatus] | None:
        """The status filter as enum values (open-any expanded)."""
        if not self.status:
            return None
        out: set[OrderStatus] = set()
        for value in self.status:
            out |= set(OPEN_STATUSES) if value == "open-any" else {OrderStatus(value)}
        return sorted(out)


class TradesQuery(_Query):
    """`GET /trades` filters; `<indicator>_min` is inclusive, `<indicator>_max` exclusive."""

    status: list[str] | None = Field(
        default=None,
        description="comma-separated or repeated",
        json_schema_extra={"items": {"type": "string", "enum": [s.value for s in TradeStatus]}},
    )
    strategy: str | None = Field(default=None, min_length=1, max_length=64)
    timeframe: str | None = Field(default=None, min_length=1, max_length=16)
    rsi_min: Indicator | None = None
    rsi_max: Indicator | None = None
    ewo_min: Indicator | None = None
    ewo_max: Indicator | None = None
    ema_min: Indicator | None = None
    ema_max: Indicator | None = None
    sma_min: Indicator | None = None
    sma_max: Indicator | None = None

    @field_validator("status")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        return _known_statuses(value, [s.value for s in TradeStatus])

    def statuses(self) -> list[TradeStatus] | None:
        """The status filter as enum values."""
        return sorted({TradeStatus(v) for v in self.status}) if self.status else None

    def indicators(self) -> dict[str, tuple[Decimal | None, Decimal | None]]:
        """Indicator ranges as `db.find_trades` takes them: name → (low inclusive, high exclusive)."""
        out: dict[str, tuple[Decimal | None, Decimal | None]] = {}
        for name in ("rsi", "ewo", "ema", "sma"):
            low, high = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
            if low is not None or high is not None:
                out[name] = (low, high)
        return out


def fill_json(fill: Fill) -> dict[str, Any]:
    """A fill as JSON-ready data."""
    return jsonable(fill)


def trade_json(trade: Trade) -> dict[str, Any]:
    """A trade (one request's execution summary) as JSON-ready data."""
    return jsonable(trade)


def detail_json(detail: OrderDetail) -> dict[str, Any]:
    """The body answering `GET /orders/{base}/{quote}/{client_order_id}`."""
    return {
        "order": order_json(detail.order),
        "fills": [fill_json(f) for f in detail.fills],
        "fallbacks": [
            {"order": order_json(child), "fills": [fill_json(f) for f in fills]} for child, fills in detail.fallbacks
        ],
        "trade": None if detail.trade is None else trade_json(detail.trade),
    }
