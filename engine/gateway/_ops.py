"""What the gateway can be asked to do, and what it answers."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.domain import Priority
from engine.exchange import ExchangeError
from engine.exchange._ratebudget import EndpointKind

__all__ = ["OP_SPECS", "GatewayRequest", "GatewayResult", "Op", "OpSpec", "ReplyTo"]


class Op(StrEnum):
    """Exchange operations the engine performs (each one REST call)."""

    CREATE_ORDER = "create_order"
    CANCEL_ORDER = "cancel_order"
    FETCH_ORDER = "fetch_order"
    OPEN_ORDERS = "fetch_open_orders"
    MY_TRADES = "fetch_my_trades"
    ACCOUNT = "fetch_balance"
    EXCHANGE_INFO = "fetch_exchange_info"
    TIME = "fetch_time"
    BOOK_TICKER = "fetch_book_ticker"
    TICKER_PRICE = "fetch_ticker_price"
    API_RESTRICTIONS = "fetch_api_restrictions"


@dataclass(frozen=True)
class OpSpec:
    """How an operation is sent: ccxt's implicit raw method and the rate-budget endpoint it charges."""

    ccxt_method: str
    endpoint: EndpointKind
    signed: bool


OP_SPECS: Mapping[Op, OpSpec] = {
    Op.CREATE_ORDER: OpSpec("private_post_order", EndpointKind.CREATE_ORDER, True),
    Op.CANCEL_ORDER: OpSpec("private_delete_order", EndpointKind.CANCEL_ORDER, True),
    Op.FETCH_ORDER: OpSpec("private_get_order", EndpointKind.FETCH_ORDER, True),
    Op.OPEN_ORDERS: OpSpec("private_get_openorders", EndpointKind.OPEN_ORDERS, True),
    Op.MY_TRADES: OpSpec("private_get_mytrades", EndpointKind.MY_TRADES_BY_ORDER, True),
    Op.ACCOUNT: OpSpec("private_get_account", EndpointKind.ACCOUNT, True),
    Op.EXCHANGE_INFO: OpSpec("public_get_exchangeinfo", EndpointKind.EXCHANGE_INFO, False),
    Op.TIME: OpSpec("public_get_time", EndpointKind.TIME, False),
    Op.BOOK_TICKER: OpSpec("public_get_ticker_bookticker", EndpointKind.TICKER, False),
    Op.TICKER_PRICE: OpSpec("public_get_ticker_price", EndpointKind.TICKER, False),
    Op.API_RESTRICTIONS: OpSpec("sapi_get_account_apirestrictions", EndpointKind.API_RESTRICTIONS, True),
}

ReplyTo = Callable[["GatewayResult"], None]
"""Where a result goes: a tell to the requesting actor (never a blocking call)."""


@dataclass(frozen=True)
class GatewayRequest:
    """One exchange call to make.

    Attributes:
        op: the operation.
        params: Binance's parameters exactly as they go on the wire (decimal strings).
        priority: queue level (cancels first, then fallbacks, exits, entries).
        key: correlation for logs and replies (usually the client order id).
        pair: the pair concerned, if any (logs, per-pair fairness).
        reply_to: receives the result; None for fire-and-forget.
        weight: an endpoint weight override (e.g. myTrades without orderId).
        gate: for a create whose intent is being written ahead: resolves once the intent is durable (or
            fails if it cannot be). The gateway prepares and signs the request at once but its bytes leave
            only when the gate opens, so the commit and the request's preparation overlap; a failed gate
            means the create was never sent (the gateway then answers nothing: the write-ahead's failure
            reaches the requester by its own path). A caller's cancel is gated the same way on its request's
            record (`engine.pair.CancelAhead`), with a gate that always opens.
    """

    op: Op
    params: Mapping[str, str] = field(default_factory=dict)
    priority: Priority = Priority.ENTRY
    key: str = ""
    pair: str | None = None
    reply_to: ReplyTo | None = field(default=None, compare=False, repr=False)
    weight: int | None = None
    gate: concurrent.futures.Future[None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class GatewayResult:
    """The outcome of one request: Binance's raw JSON, or the mapped error.

    `attempts` counts sends (retries of idempotent calls included); `sent_ms`/`done_ms` come from the
    injected clock.
    """

    request: GatewayRequest
    data: Any = None
    error: ExchangeError | None = None
    attempts: int = 1
    sent_ms: int = 0
    done_ms: int = 0

    @property
    def ok(self) -> bool:
        """True when the call succeeded."""
        return self.error is None
