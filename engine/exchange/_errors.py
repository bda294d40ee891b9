"""The exchange error tree: every failure is mapped once, at the boundary, into what it means to do.

```
ExchangeError                      base; carries operation, Binance code, HTTP status, message
├── Rejected                       the exchange definitely did NOT carry the request out
│   ├── FilterRejected             -1013 / -2010 "Filter failure: <FILTER>" (filter_name)
│   ├── InsufficientBalance        -2010 "Account has insufficient balance …"
│   ├── DuplicateOrder             -2010 "Duplicate order sent." (the client order id is live)
│   ├── OrderNotFound              -2011 "Unknown order sent." / -2013 / -2026 (ambiguous right after submit)
│   ├── WouldTakeRejected          -2010 "Order would immediately match and take." (LIMIT_MAKER)
│   ├── MarketClosed               -2010 "Market is closed."
│   └── InvalidRequest             any other 4xx: bad parameter, bad symbol, permission on symbol …
├── OutcomeUnknown                 timeout, 5xx, -1000/-1001/-1006/-1007, dropped connection: a create or
│                                  cancel MAY have happened — resolve by looking the order up, never resend
├── RetryLater                     nothing happened; try again later (retry_after_s when the exchange says)
│   ├── RateLimited                429, -1003, -1015 (all callers wait for retry_after_s)
│   └── ClockSkew                  -1021: re-sync the clock offset first
└── StopTrading                    a person must act; halt new orders (alert)
    ├── Banned                     418 IP ban (retry_after_s / banned_until_ms)
    ├── OrderLimitReached          the gateway's own: order limits would hold creates past max_create_hold
    └── AuthFailed                 -1002, -1022, -2014, -2015, 401: key, signature or permissions
```

`map_error` maps by Binance code first, then by message text, then by HTTP status, and only then by ccxt
exception class, because ccxt maps some codes differently on loopback and production URLs (its spot-only
table is skipped for loopback); the code is the same on both, so the result is too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "MUTATING_OPERATIONS",
    "AuthFailed",
    "Banned",
    "ClockSkew",
    "DuplicateOrder",
    "ExchangeError",
    "FilterRejected",
    "InsufficientBalance",
    "InvalidRequest",
    "MarketClosed",
    "OrderLimitReached",
    "OrderNotFound",
    "OutcomeUnknown",
    "RateLimited",
    "Rejected",
    "RetryLater",
    "StopTrading",
    "WouldTakeRejected",
]

MUTATING_OPERATIONS: Final = frozenset({"create_order", "cancel_order"})
"""Operations whose unknown outcome matters: the order may have been created or canceled."""


class ExchangeError(Exception):
    """Base of every mapped exchange error.

    Attributes:
        operation: what was attempted, e.g. "create_order", "cancel_order", "fetch_order".
        code: Binance's error code (negative int) when known.
        http_status: the HTTP status when known.
        exchange_message: Binance's `msg` (or the transport's message) when known.
    """

    critical: bool = False
    """True when the error must raise an alert (bans, auth failures)."""

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        code: int | None = None,
        http_status: int | None = None,
        exchange_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code
        self.http_status = http_status
        self.exchange_message = exchange_message

    def context(self) -> dict[str, str]:
        """A flat, secret-free description for `ErrorRecord.context` and log lines."""
        out = {"kind": type(self).__name__, "operation": self.operation}
        if self.code is not None:
            out["code"] = str(self.code)
        if self.http_status is not None:
            out["http_status"] = str(self.http_status)
        if self.exchange_message:
            out["exchange_message"] = self.exchange_message[:300]
        return out


class Rejected(ExchangeError):
    """The exchange definitely did not carry the request out; resending it unchanged fails again."""


class FilterRejected(Rejected):
    """An exchangeInfo filter refused the order (`filter_name`, e.g. "LOT_SIZE", "PERCENT_PRICE_BY_SIDE")."""

    def __init__(
        self,
        message: str,
        *,
        filter_name: str,
        operation: str = "",
        code: int | None = None,
        http_status: int | None = None,
        exchange_message: str | None = None,
    ) -> None:
        super().__init__(
            message, operation=operation, code=code, http_status=http_status, exchange_message=exchange_message
        )
        self.filter_name = filter_name

    @property
    def is_percent_price(self) -> bool:
        """True for PERCENT_PRICE / PERCENT_PRICE_BY_SIDE: the market moved away (volatility trigger)."""
        return self.filter_name.startswith("PERCENT_PRICE")


class InsufficientBalance(Rejected):
    """Not enough free balance for the order."""


class DuplicateOrder(Rejected):
    """The client order id is already used by an open order: the order we wanted EXISTS."""


class OrderNotFound(Rejected):
    """The exchange does not know the order. Right after a submit this proves nothing (REST lags)."""


class WouldTakeRejected(Rejected):
    """A LIMIT_MAKER order would have taken liquidity."""


class MarketClosed(Rejected):
    """The symbol is not trading right now."""


class InvalidRequest(Rejected):
    """A malformed or refused request (bad parameter, unknown symbol, symbol not permitted, …)."""


class OutcomeUnknown(ExchangeError):
    """The request may or may not have been executed: look the order up; never resend a create blindly."""


class RetryLater(ExchangeError):
    """Nothing was executed; the same request may be sent again after `retry_after_s` (if given)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        operation: str = "",
        code: int | None = None,
        http_status: int | None = None,
        exchange_message: str | None = None,
    ) -> None:
        super().__init__(
            message, operation=operation, code=code, http_status=http_status, exchange_message=exchange_message
        )
        self.retry_after_s = retry_after_s


class RateLimited(RetryLater):
    """429 / -1003 / -1015: every caller waits for `retry_after_s` before sending anything."""


class ClockSkew(RetryLater):
    """-1021: the request timestamp was outside recvWindow; re-sync the clock offset before retrying."""


class StopTrading(ExchangeError):
    """Trading cannot continue without a person: halt new orders and alert."""

    critical = True


class OrderLimitReached(StopTrading):
    """The exchange's order limits would hold new orders for longer than the engine lets a create wait (a daily
    order count reached, a long ban): new orders stop until `until_ms` (engine clock, epoch ms)."""

    def __init__(self, message: str, *, until_ms: int) -> None:
        super().__init__(message, operation="create_order")
        self.until_ms = until_ms


class Banned(StopTrading):
    """418: the IP is banned until `banned_until_ms` (or for `retry_after_s`)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        banned_until_ms: int | None = None,
        operation: str = "",
        code: int | None = None,
        http_status: int | None = None,
        exchange_message: str | None = None,
    ) -> None:
        super().__init__(
            message, operation=operation, code=code, http_status=http_status, exchange_message=exchange_message
        )
        self.retry_after_s = retry_after_s
        self.banned_until_ms = banned_until_ms


class AuthFailed(StopTrading):
    """The key, its signature, its IP whitelist or its permissions were refused."""


_FILTER_RE: Final = re.compile(r"Filter failure: ([A-Z_]+)")
_BANNED_UNTIL_RE: Final = re.compile(r"banned until (\d{10,16})")


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """The `Retry-After` header in seconds (case-insensitive lookup), or None if absent or malformed."""
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value)  # float-ok: a duration in seconds, not money
            except (TypeError, ValueError):
                return None
            return seconds if seconds >= 0 else None
    return None


def parse_banned_until_ms(message: str | None) -> int | None:
    """The ban end (epoch ms) from a -1003 "IP banned until <ms>" message, if present."""
    if not message:
        return None
    match = _BANNED_UNTIL_RE.search(message)
    return int(match.group(1)) if match else None


_ORDER_WINDOW_RE: Final = re.compile(r"orders per (?:(\d+) )?(SECOND|MINUTE|HOUR|DAY)\b")
_WINDOW_UNIT_MS: Final[Mapping[str, int]] = {"SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}


def parse_order_window_ms(message: str | None) -> int | None:
    """The order-count window a -1015 names ("current limit is 50 orders per 10 SECOND.", "… per DAY."), in ms.

    Binance sends that 429 without a Retry-After header: the window is what says when creates may go again.
    """
    match = _ORDER_WINDOW_RE.search(message or "")
    if match is None:
        return None
    return int(match.group(1) or 1) * _WINDOW_UNIT_MS[match.group(2)] or None


def filter_name_of(message: str | None) -> str | None:
    """The filter named by a "Filter failure: <FILTER>" message, if any."""
    if not message:
        return None
    match = _FILTER_RE.search(message)
    return match.group(1) if match else None
