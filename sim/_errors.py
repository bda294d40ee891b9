"""Binance error type shared by the pure core and the HTTP layer."""

from __future__ import annotations

__all__ = ["SimError", "fmt"]

from decimal import Decimal


class SimError(Exception):
    """A Binance-style rejection: HTTP status plus ``{"code", "msg"}`` body."""

    def __init__(self, status: int, code: int, msg: str, retry_after: int | None = None) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.retry_after = retry_after

    def body(self) -> dict[str, object]:
        """The JSON error body."""
        return {"code": self.code, "msg": self.msg}


def fmt(value: Decimal) -> str:
    """Format a decimal the way Binance does: a plain string with 8 decimals."""
    return f"{value:.8f}"


def bad_param(name: str) -> SimError:
    """-1102 for a missing or malformed mandatory parameter."""
    return SimError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE_ORDER = "Duplicate order sent."
WOULD_TAKE = "Order would immediately match and take."
MARKET_CLOSED = "Market is closed."
