"""`map_error`: the one place where exchange and transport failures become the engine's error tree.

Precedence, and why:
1. HTTP 418 / 429: the status alone says "banned" / "slow down", whatever the body.
2. Binance code: identical whichever URL ccxt talked to (ccxt's own class is not: on a loopback URL it skips
   the spot table, so -2026, -1108, -1004, -1008, -1145 change class; -2015 becomes DDoSProtection once any
   private call succeeded).
3. Binance message: -2010 and -1013 carry several meanings that only the text tells apart, and ccxt's
   exact-message exceptions ("binance Account has insufficient balance …") keep the text but drop the code.
4. HTTP status, then the ccxt class, then the Python transport exception.
Whatever is left is treated as "outcome unknown" for creates and cancels: guessing "failed" is how orders
get duplicated (Hummingbot #3374).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from engine.exchange._errors import (
    MUTATING_OPERATIONS,
    AuthFailed,
    Banned,
    ClockSkew,
    DuplicateOrder,
    ExchangeError,
    FilterRejected,
    InsufficientBalance,
    InvalidRequest,
    MarketClosed,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    RetryLater,
    WouldTakeRejected,
    filter_name_of,
    parse_banned_until_ms,
    parse_retry_after,
)

__all__ = ["ExtractedError", "extract_ccxt_error", "map_error"]


@dataclass(frozen=True, slots=True)
class ExtractedError:
    """What could be recovered from a ccxt exception's text."""

    http_status: int | None
    code: int | None
    message: str | None


# "binance 429 Too Many Requests {...}" (handle_errors on 418/429)
_DDOS_STATUS_RE: Final = re.compile(r"^\S+ (\d{3}) ")
# "binance POST https://…/api/v3/order 503 Service Unavailable body" (handle_http_status_code)
_HTTP_STATUS_RE: Final = re.compile(r"^\S+ (?:GET|POST|PUT|DELETE|PATCH) \S+ (\d{3}) ")
_DECODER: Final = json.JSONDecoder()


def extract_ccxt_error(exc: BaseException) -> ExtractedError:
    """Recover the HTTP status, Binance code and message from a ccxt exception.

    ccxt's `binance.handle_errors` raises with the raw JSON body inside the message
    ("binance {"code":-2011,"msg":"Unknown order sent."}"), or, for exact-message matches, with only the
    message ("binance Account has insufficient balance for requested action."). Transport errors carry
    neither ("binance POST https://… ").
    """
    text = str(exc)
    status: int | None = None
    match = _HTTP_STATUS_RE.match(text) or _DDOS_STATUS_RE.match(text)
    if match:
        status = int(match.group(1))
    body = _first_error_object(text)
    if body is not None:
        code = _as_int(body.get("code"))
        msg = body.get("msg")
        return ExtractedError(status, code, msg if isinstance(msg, str) else None)
    if match:
        return ExtractedError(status, None, None)
    if not type(exc).__module__.startswith("ccxt"):
        return ExtractedError(None, None, text[:300] or None)  # a transport exception's own message
    # an exact-message exception: "<exchange id> <Binance msg>"; a transport error: "<id> <METHOD> <url>"
    _, _, rest = text.partition(" ")
    if not rest or re.match(r"^(GET|POST|PUT|DELETE|PATCH) ", rest):
        return ExtractedError(None, None, None)
    return ExtractedError(None, None, rest)


def _first_error_object(text: str) -> dict[str, object] | None:
    start = text.find("{")
    while start != -1:
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict) and ("code" in value or "msg" in value):
            return value
        start = text.find("{", start + 1)
    return None


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class _Ctx:
    operation: str
    code: int | None
    status: int | None
    message: str | None
    retry_after_s: float | None

    def text(self) -> str:
        parts = [self.operation or "request", "failed"]
        if self.status is not None:
            parts.append(f"(HTTP {self.status})")
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.message:
            parts.append(f": {self.message[:200]}")
        return " ".join(parts)


def _make(cls: type[ExchangeError], ctx: _Ctx) -> ExchangeError:
    if issubclass(cls, RetryLater):
        return cls(
            ctx.text(),
            retry_after_s=ctx.retry_after_s,
            operation=ctx.operation,
            code=ctx.code,
            http_status=ctx.status,
            exchange_message=ctx.message,
        )
    if cls is Banned:
        return Banned(
            ctx.text(),
            retry_after_s=ctx.retry_after_s,
            banned_until_ms=parse_banned_until_ms(ctx.message),
            operation=ctx.operation,
            code=ctx.code,
            http_status=ctx.status,
            exchange_message=ctx.message,
        )
    return cls(ctx.text(), operation=ctx.operation, code=ctx.code, http_status=ctx.status, exchange_message=ctx.message)


def _unknown(ctx: _Ctx) -> ExchangeError:
    # For a create or cancel the order may have changed; for a read nothing happened that matters.
    return _make(OutcomeUnknown if ctx.operation in MUTATING_OPERATIONS else RetryLater, ctx)


def _busy(ctx: _Ctx) -> ExchangeError:
    # "server busy" on a 4xx was refused up front; on a 5xx (or unknown status) it may have run.
    if ctx.status is not None and ctx.status < 500:
        return _make(RetryLater, ctx)
    return _unknown(ctx)


def _by_message(ctx: _Ctx) -> ExchangeError | None:
    msg = ctx.message or ""
    low = msg.lower()
    name = filter_name_of(msg)
    if name is not None:
        return FilterRejected(
            ctx.text(),
            filter_name=name,
            operation=ctx.operation,
            code=ctx.code,
            http_status=ctx.status,
            exchange_message=ctx.message,
        )
    rules: tuple[tuple[str, Callable[[_Ctx], ExchangeError]], ...] = (
        ("insufficient balance", lambda c: _make(InsufficientBalance, c)),
        ("duplicate order", lambda c: _make(DuplicateOrder, c)),
        ("immediately match and take", lambda c: _make(WouldTakeRejected, c)),
        ("market is closed", lambda c: _make(MarketClosed, c)),
        ("unknown order sent", lambda c: _make(OrderNotFound, c)),
        ("order does not exist", lambda c: _make(OrderNotFound, c)),
        ("recvwindow", lambda c: _make(ClockSkew, c)),
        ("ahead of the server's time", lambda c: _make(ClockSkew, c)),
        ("execution status unknown", _unknown),
        ("ip banned", lambda c: _make(Banned, c)),
        ("too much request weight", lambda c: _make(RateLimited, c)),
        ("too many new orders", lambda c: _make(RateLimited, c)),
        ("too many requests", lambda c: _make(RateLimited, c)),
        ("api-key", lambda c: _make(AuthFailed, c)),
        ("signature for this request", lambda c: _make(AuthFailed, c)),
    )
    for needle, build in rules:
        if needle in low:
            return build(ctx)
    return None


# Binance code → builder. Codes whose meaning depends on the message are resolved by _by_message first.
_BY_CODE: Final[Mapping[int, Callable[[_Ctx], ExchangeError]]] = {
    -1000: _unknown,  # UNKNOWN: an internal error; the order may exist
    -1001: _unknown,  # DISCONNECTED: internal error
    -1006: _unknown,  # UNEXPECTED_RESP: "Execution status unknown"
    -1007: _unknown,  # TIMEOUT: "Send status unknown; execution status unknown"
    -1004: _busy,  # SERVER_BUSY
    -1008: _busy,  # SERVER_BUSY (overloaded)
    -1016: lambda c: _make(RetryLater, c),  # SERVICE_SHUTTING_DOWN: not processed
    -1002: lambda c: _make(AuthFailed, c),  # UNAUTHORIZED
    -1003: lambda c: _make(Banned if c.status == 418 or "banned" in (c.message or "") else RateLimited, c),
    -1015: lambda c: _make(RateLimited, c),  # TOO_MANY_ORDERS
    -1021: lambda c: _make(ClockSkew, c),  # INVALID_TIMESTAMP → re-sync
    -1022: lambda c: _make(AuthFailed, c),  # INVALID_SIGNATURE
    -2014: lambda c: _make(AuthFailed, c),  # BAD_API_KEY_FMT
    -2015: lambda c: _make(AuthFailed, c),  # REJECTED_MBX_KEY (key, IP or permissions)
    -1013: lambda c: _by_message(c) or _make(InvalidRequest, c),  # INVALID_MESSAGE / filter failure
    -2010: lambda c: _by_message(c) or _make(Rejected, c),  # NEW_ORDER_REJECTED, many reasons
    # CANCEL_REJECTED: "Unknown order sent." is not-found; "cancel restrictions" means the order exists
    -2011: lambda c: _make(OrderNotFound if "unknown order" in (c.message or "").lower() else InvalidRequest, c),
    -2013: lambda c: _make(OrderNotFound, c),  # NO_SUCH_ORDER
    -2026: lambda c: _make(OrderNotFound, c),  # ORDER_ARCHIVED: canceled/expired unfilled > 90 days ago
}

# ccxt class name → builder; looked up along the exception's MRO, most specific class first.
_BY_CCXT_CLASS: Final[Mapping[str, Callable[[_Ctx], ExchangeError]]] = {
    "DDoSProtection": lambda c: _make(Banned if c.status == 418 else RateLimited, c),
    "RateLimitExceeded": lambda c: _make(RateLimited, c),
    "InvalidNonce": lambda c: _make(ClockSkew, c),
    "AuthenticationError": lambda c: _make(AuthFailed, c),
    "InsufficientFunds": lambda c: _make(InsufficientBalance, c),
    "OrderNotFound": lambda c: _make(OrderNotFound, c),
    "OrderImmediatelyFillable": lambda c: _make(WouldTakeRejected, c),
    "DuplicateOrderId": lambda c: _make(DuplicateOrder, c),
    "MarketClosed": lambda c: _make(MarketClosed, c),
    "BadSymbol": lambda c: _make(InvalidRequest, c),
    "BadRequest": lambda c: _make(InvalidRequest, c),
    "InvalidOrder": lambda c: _make(InvalidRequest, c),
    "ArgumentsRequired": lambda c: _make(InvalidRequest, c),
    "NotSupported": lambda c: _make(InvalidRequest, c),
    "OperationRejected": lambda c: _make(Rejected, c),
    "RequestTimeout": _unknown,
    "ExchangeNotAvailable": _unknown,
    "NetworkError": _unknown,
    "OperationFailed": _unknown,
    "TimeoutError": _unknown,  # asyncio / builtin timeouts
    "ConnectionError": _unknown,
    "OSError": _unknown,
}


def _by_status(ctx: _Ctx) -> ExchangeError | None:
    status = ctx.status
    if status is None:
        return None
    if status == 401:
        return _make(AuthFailed, ctx)
    if status == 403:
        return _make(RetryLater, ctx)  # WAF block: refused before reaching the engine
    if status == 408 or status >= 500:
        return _unknown(ctx)
    if 400 <= status < 500:
        return _make(InvalidRequest, ctx)
    return None


def map_error(
    *,
    http_status: int | None = None,
    binance_code: int | None = None,
    message: str | None = None,
    ccxt_exc: BaseException | None = None,
    headers: Mapping[str, str] | None = None,
    operation: str,
) -> ExchangeError:
    """Map one failure into the engine's error tree (see `engine.exchange` for the tree).

    Args:
        http_status: the HTTP status when the caller knows it.
        binance_code: Binance's `code` when the caller knows it.
        message: Binance's `msg` (or a transport message).
        ccxt_exc: the exception ccxt (or the transport) raised; code, message and status missing from the
            other arguments are recovered from it.
        headers: response headers when known (only `Retry-After` is read here).
        operation: "create_order", "cancel_order", "fetch_order", … — decides whether an unknown outcome
            matters (creates and cancels) or is simply "try again" (reads).

    Returns:
        The mapped error; the caller raises, stores or reports it. Never raises itself.
    """
    if isinstance(ccxt_exc, ExchangeError):
        return ccxt_exc  # already mapped (e.g. re-raised through a layer that maps again)
    if ccxt_exc is not None:
        found = extract_ccxt_error(ccxt_exc)
        http_status = http_status if http_status is not None else found.http_status
        binance_code = binance_code if binance_code is not None else found.code
        message = message if message is not None else found.message
        if not message and isinstance(ccxt_exc, TimeoutError | OSError):
            # A bare timeout or connection error says nothing by itself ("create_order failed"): name it.
            message = f"{type(ccxt_exc).__name__}: no answer" if isinstance(ccxt_exc, TimeoutError) else repr(ccxt_exc)
    ctx = _Ctx(operation, binance_code, http_status, message, parse_retry_after(headers))
    if http_status == 418:
        return _make(Banned, ctx)
    if http_status == 429:
        return _make(RateLimited, ctx)
    if binance_code is not None:
        builder = _BY_CODE.get(binance_code)
        if builder is not None:
            return builder(ctx)
    by_message = _by_message(ctx) if message else None
    if by_message is not None:
        return by_message
    if binance_code is not None and binance_code < 0 and (http_status is None or http_status < 500):
        return _make(InvalidRequest, ctx)  # an unlisted Binance code on a 4xx: refused, not executed
    by_status = _by_status(ctx)
    if by_status is not None:
        return by_status
    if ccxt_exc is not None:
        for klass in type(ccxt_exc).__mro__:
            builder = _BY_CCXT_CLASS.get(klass.__name__)
            if builder is not None:
                return builder(ctx)
    return _unknown(ctx)
