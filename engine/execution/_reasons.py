"""Why an execution ended as it did: the machine-readable reasons of `ExecutionResult` (and of the trade's note,
`<reason>: <detail>`). Pure.

The words name what actually happened to the request: a limit request's own order is its `limit`, the market or
IOC order sent for its remainder its `fallback`; a market request has no limit and no fallback, only its own
`market` order (sent again, as a new order, after a retry-later failure: the same order to its author).
A request that started in a volatile market sends its configured fallback at once in place of the limit: that
order is its fallback.
"""

from __future__ import annotations

from enum import StrEnum

from engine.domain import OrderRequest, OrderType

__all__ = ["FAILED_REASONS", "ResultReason", "rejected_reason", "unfinished_reason"]


class ResultReason(StrEnum):
    """Why the execution ended as it did (machine-readable; the trade's note starts with it)."""

    FILLED = "filled"
    """Everything tradable filled (a remainder below the lot step is reported as dust)."""
    REFUSED_FILTER = "filter_failure"
    """Nothing sent: the order would break an exchange filter (named in the detail)."""
    REFUSED_NO_PRICE = "no_price"
    """Nothing sent (or no fallback): no price to set the limit or to judge the slippage by."""
    LIMIT_REJECTED = "limit_rejected"
    """A limit request's own order was rejected by the exchange (no fallback follows)."""
    MARKET_REJECTED = "market_rejected"
    """A market request's order was rejected by the exchange (or stayed refused with retry-later until its
    attempts ran out)."""
    MARKET_INCOMPLETE = "market_incomplete"
    """A market request's order expired with a remainder: liquidity, or its price bound (an IOC at the slippage
    bound around the request's price), ran out."""
    CANCELED_EXTERNALLY = "canceled_externally"
    """The limit was canceled outside the engine, or expired by self-trade prevention: no fallback sent."""
    FALLBACK_NONE = "fallback_none"
    """The limit did not fill in time and no fallback is configured: the remainder is reported."""
    SLIPPAGE_REFUSED = "slippage_refused"
    """The market was beyond the slippage bound: the fallback (or the market request's order) was not sent."""
    DUST = "dust"
    """The remainder is below what the exchange accepts (step, minimum quantity or notional): reported."""
    FALLBACK_REJECTED = "fallback_rejected"
    """A limit request's fallback was rejected by the exchange (or stayed refused with retry-later until its
    attempts ran out)."""
    FALLBACK_INCOMPLETE = "fallback_incomplete"
    """A limit request's fallback expired with a remainder: liquidity or the slippage bound ran out."""
    STOP_TRADING = "stop_trading"
    """The exchange refused the key or banned the IP: the engine stops trading."""
    CANCELED = "canceled"
    """The caller (or a graceful shutdown) canceled the request: no fallback followed."""


FAILED_REASONS = frozenset(
    {
        ResultReason.REFUSED_FILTER,
        ResultReason.REFUSED_NO_PRICE,
        ResultReason.LIMIT_REJECTED,
        ResultReason.STOP_TRADING,
        ResultReason.MARKET_REJECTED,
        ResultReason.FALLBACK_REJECTED,
    }
)
"""Reasons that make a request with nothing filled `failed` rather than `canceled`."""


def rejected_reason(request: OrderRequest) -> ResultReason:
    """The reason for an order the fallback step sent that the exchange rejected: a market request's own order
    (the plan counts it as the fallback attempt, so that a restart sends no second one, but it is no fallback),
    or a limit request's fallback."""
    if request.order_type is OrderType.MARKET:
        return ResultReason.MARKET_REJECTED
    return ResultReason.FALLBACK_REJECTED


def unfinished_reason(request: OrderRequest) -> ResultReason:
    """The reason for an order the fallback step sent that expired with a remainder (see `rejected_reason`)."""
    if request.order_type is OrderType.MARKET:
        return ResultReason.MARKET_INCOMPLETE
    return ResultReason.FALLBACK_INCOMPLETE
