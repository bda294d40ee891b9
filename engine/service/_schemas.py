"""What the control API accepts and returns: pydantic request bodies and JSON views of engine objects.

Amounts and prices travel as decimal strings ("0.01"): a JSON float has already lost precision by the time
it is parsed, so one is refused with a message saying so rather than converted.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from engine.api import Accepted, EngineEvent, Refusal, RefusalReason
from engine.domain import Order, StrategyContext

__all__ = [
    "ApiDecimal",
    "OrderBody",
    "event_json",
    "field_errors",
    "order_json",
    "outcome_json",
    "parse_pair",
    "refusal_status",
]

PAIR_PATTERN = r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$"
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
    Field(json_schema_extra={"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$", "examples": ["0.01"]}),
]
"""A positive decimal sent as a JSON string (or integer)."""


class OrderBody(BaseModel):
    """`POST /orders`: one order request."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    pair: str = Field(pattern=PAIR_PATTERN, description='market in BASE/QUOTE form, e.g. "BTC/USDT"')
    side: Literal["buy", "sell"]
    amount: ApiDecimal = Field(description="base-asset amount as a decimal string")
    price: ApiDecimal | None = Field(default=None, description="limit price; required unless order_type is market")
    order_type: Literal["limit", "market", "limit_maker"] = "limit"
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$", description="same key → same order"
    )
    context: StrategyContext | None = Field(default=None, description="strategy, timeframe and indicator values")
    limit_timeout: ApiDecimal | None = Field(default=None, description="seconds before the fallback (default: config)")
    fallback: Literal["market", "ioc_limit", "none"] | None = None

    @model_validator(mode="after")
    def _price_for_limit(self) -> Self:
        if self.order_type != "market" and self.price is None:
            # Raised as a field error so the 422 names `price`, not the whole body.
            raise ValueError(f"price: a {self.order_type} order needs a price")
        if self.order_type == "market" and self.price is not None:
            raise ValueError("price: a market order takes no price")
        return self


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
    """An order as JSON-ready data (decimals as strings, times ISO 8601 UTC)."""
    return order.model_dump(mode="json")


def outcome_json(outcome: Accepted | Refusal) -> dict[str, Any]:
    """The body answering `POST /orders`."""
    if isinstance(outcome, Accepted):
        return {"accepted": True, "duplicate": outcome.duplicate, "order": order_json(outcome.order)}
    return {
        "accepted": False,
        "error": outcome.reason.value,
        "message": outcome.message,
        "details": dict(outcome.details),
    }


def event_json(event: EngineEvent) -> dict[str, Any]:
    """An engine event as JSON-ready data (what `GET /events` streams)."""
    return {
        "kind": event.kind.value,
        "pair": event.pair,
        "time": event.time.isoformat(),
        "request_id": event.request_id,
        "client_order_id": event.client_order_id,
        "order": None if event.order is None else order_json(event.order),
        "fill": None if event.fill is None else event.fill.model_dump(mode="json"),
        "trade": None if event.trade is None else event.trade.model_dump(mode="json"),
        "message": event.message,
    }
