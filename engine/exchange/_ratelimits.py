"""Binance's rate limits as data: the limit kinds, the endpoints the gateway calls with their documented weights,
and the default limits (binance-spot.md §5) that exchangeInfo's `rateLimits` override. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["DEFAULT_LIMITS", "ENDPOINT_WEIGHTS", "INTERVAL_MS", "EndpointKind", "LimitKind", "RateLimit"]

_SECOND: Final = 1000
INTERVAL_MS: Final[Mapping[str, int]] = {
    "SECOND": _SECOND,
    "MINUTE": 60 * _SECOND,
    "HOUR": 3600 * _SECOND,
    "DAY": 86400 * _SECOND,
}


class LimitKind(StrEnum):
    """Binance's `rateLimitType`."""

    REQUEST_WEIGHT = "REQUEST_WEIGHT"
    ORDERS = "ORDERS"
    RAW_REQUESTS = "RAW_REQUESTS"


class EndpointKind(StrEnum):
    """The REST calls the gateway makes, each with its documented weight (`ENDPOINT_WEIGHTS`)."""

    CREATE_ORDER = "create_order"
    CANCEL_ORDER = "cancel_order"
    FETCH_ORDER = "fetch_order"
    OPEN_ORDERS = "open_orders"
    OPEN_ORDERS_ALL = "open_orders_all"
    MY_TRADES = "my_trades"
    MY_TRADES_BY_ORDER = "my_trades_by_order"
    ACCOUNT = "account"
    EXCHANGE_INFO = "exchange_info"
    TIME = "time"
    DEPTH = "depth"
    TICKER = "ticker"
    TICKER_ALL = "ticker_all"
    API_RESTRICTIONS = "api_restrictions"

    @property
    def is_order(self) -> bool:
        """True for the order POST / DELETE whose success costs 0 weight."""
        return self in (EndpointKind.CREATE_ORDER, EndpointKind.CANCEL_ORDER)


ENDPOINT_WEIGHTS: Final[Mapping[EndpointKind, int]] = {
    EndpointKind.CREATE_ORDER: 1,  # 0 when successful (refunded by release)
    EndpointKind.CANCEL_ORDER: 1,  # 0 when successful
    EndpointKind.FETCH_ORDER: 4,
    EndpointKind.OPEN_ORDERS: 6,
    EndpointKind.OPEN_ORDERS_ALL: 80,
    EndpointKind.MY_TRADES: 20,
    EndpointKind.MY_TRADES_BY_ORDER: 5,
    EndpointKind.ACCOUNT: 20,
    EndpointKind.EXCHANGE_INFO: 20,
    EndpointKind.TIME: 1,
    EndpointKind.DEPTH: 5,  # limit ≤ 100
    EndpointKind.TICKER: 2,
    EndpointKind.TICKER_ALL: 80,
    EndpointKind.API_RESTRICTIONS: 1,
}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One Binance limit: `limit` units of `kind` per fixed window of `interval_ms`."""

    kind: LimitKind
    interval_ms: int
    limit: int

    @property
    def label(self) -> str:
        """E.g. "REQUEST_WEIGHT/60s"."""
        return f"{self.kind.value}/{self.interval_ms // 1000}s"

    def window_start(self, now_ms: int) -> int:
        """Start of the fixed window containing `now_ms` (epoch-aligned, so days start at 00:00 UTC)."""
        return now_ms - now_ms % self.interval_ms


DEFAULT_LIMITS: Final[tuple[RateLimit, ...]] = (
    RateLimit(LimitKind.REQUEST_WEIGHT, 60 * _SECOND, 6000),
    RateLimit(LimitKind.ORDERS, 10 * _SECOND, 50),
    RateLimit(LimitKind.ORDERS, 86400 * _SECOND, 160000),
    RateLimit(LimitKind.RAW_REQUESTS, 300 * _SECOND, 300000),
)
"""Current documented values (binance-spot.md §5); exchangeInfo's `rateLimits` override them."""
