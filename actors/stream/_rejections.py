"""Why the exchange refused a user data stream, and what that means for retrying (pure).

A refusal reaches the stream actor three ways: UBWA's ``STREAM_UNREPAIRABLE`` after a rejected
``userDataStream.subscribe.signature`` (its error text carries only ``code=`` and ``msg=``; UBWA drops the
HTTP-like status and the ``data.retryAfter`` of the answer), a refused WebSocket handshake (``HTTP 429`` crashes
the stream, ``HTTP 418`` sends UBWA into its 0.1 s retry loop), and Binance.US's REST listenKey request (status,
code and ``Retry-After`` header). Each is sorted into one of four kinds (binance-spot.md §4.1, §4.2, §5):

- fatal: the key or the signature is bad; retrying cannot fix it and would only spend weight;
- throttled: a rate limit (``-1003``, ``-1015``, HTTP 429/418), a WAF block (HTTP 403) or trouble on the
  exchange's side (HTTP 5xx codes). It passes by itself, so it is never fatal — but retrying soon earns another
  refusal, and going on past 429s is what gets an IP banned (418, two minutes up to three days): retry slowly,
  as the exchange asks;
- clock: the signed timestamp was outside the exchange's window (``-1021``: more than 1 s ahead of its clock, or
  older than ``recvWindow``). The key is fine, the host clock is off: re-measure the offset, retry with backoff,
  never fatal (a fatal stream would leave fills to the REST reconciliation until a restart);
- other: anything else; retried with backoff, fatal after a few in a row (the watchdog counts them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BUSY_CODES",
    "CLOCK_SKEW_CODES",
    "FATAL_SUBSCRIBE_CODES",
    "RATE_LIMIT_CODES",
    "THROTTLE_MIN_DELAY_MS",
    "Rejection",
    "RejectionKind",
    "classify_rejection",
    "retry_after_in",
    "stream_rejection",
    "subscribe_rejection",
]

FATAL_SUBSCRIBE_CODES = frozenset({-1002, -1022, -2008, -2014, -2015})
"""Subscribe rejections that retrying cannot fix: unauthorized, bad signature, bad or unknown API key."""

CLOCK_SKEW_CODES = frozenset({-1021})
"""INVALID_TIMESTAMP: "Timestamp for this request was 1000ms ahead of the server's time" / "is outside of the
recvWindow". The signature's timestamp disagrees with the exchange's clock; nothing is wrong with the key."""

RATE_LIMIT_CODES = frozenset({-1003, -1015})
"""TOO_MANY_REQUESTS (429 weight limit, 418 IP ban, "too many requests queued") and TOO_MANY_ORDERS (429)."""

BUSY_CODES = frozenset({-1000, -1001, -1006, -1007, -1008})
"""The exchange's own trouble, answered with HTTP 5xx: UNKNOWN, DISCONNECTED (internal error), UNEXPECTED_RESP,
TIMEOUT, SERVER_BUSY. Nothing about the request is wrong; it may succeed a little later."""

THROTTLE_MIN_DELAY_MS = 10_000
"""The least wait after a rate-limited (or exchange-busy) refusal, whatever the backoff's cap.

The default floor is the backoff's cap (30 s), raised to this when the cap is configured lower. Binance's
request weight is counted per minute and a refusal says this minute's is spent: retrying within seconds only
earns more 429s, and going on past 429s gets the IP banned (418, two minutes up to three days) — which would
stop trading, not just the stream. Two or three tries a minute cost nothing (4 weight each) and the fills
keep coming meanwhile from the reconciliation the root runs every few seconds while a stream is not connected.
"""

_RATE_LIMIT_STATUSES = frozenset({418, 429})
_AUTH_STATUSES = frozenset({401})
_BLOCKED_STATUSES = frozenset({403})
"""A WAF block (binance-spot.md §4.1): refused before it reached the exchange, not a judgement of the key — as
`engine.exchange` maps it for REST (retry later). A bad key answers 401 with -2014/-2015."""
_MAX_RETRY_AFTER_MS = 3 * 86_400_000  # Binance's longest ban: a longer wait can only be a misread number

_CODE_RE = re.compile(r"code=(-?\d+)")
_HANDSHAKE_RE = re.compile(r"rejected WebSocket connection: HTTP (\d{3})")
# 418 -1003 says "IP banned until <epoch ms>"; a WS API answer's ``data.retryAfter`` is an epoch in ms too.
_UNTIL_RE = re.compile(r"(?:banned until|retryAfter\W{0,3})\s*(\d{13})")


class RejectionKind(StrEnum):
    """What a refusal means for retrying."""

    FATAL = "fatal"
    THROTTLED = "throttled"
    CLOCK = "clock"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refusal by the exchange, classified.

    Attributes:
        kind: Fatal, throttled, clock or other.
        code: Binance's error code (0: the answer had none), or None when only an HTTP status is known.
        status: The HTTP status when known (handshake, listenKey request), else None.
        retry_after_ms: How long the exchange asked us to wait (``Retry-After``, or a ban's end), if it said.
    """

    kind: RejectionKind
    code: int | None
    status: int | None = None
    retry_after_ms: int | None = None

    @property
    def label(self) -> str:
        """``rate limited (code=-1003)``, ``exchange busy (HTTP 503)``, ``clock skew (code=-1021)``, ``rejected
        (code=-2015)``: for health."""
        what = f"code={self.code}" if self.code is not None else f"HTTP {self.status}"
        if self.kind is RejectionKind.CLOCK:
            return f"clock skew ({what})"
        if self.kind is not RejectionKind.THROTTLED:
            return f"rejected ({what})"
        if self.code in RATE_LIMIT_CODES or self.status in _RATE_LIMIT_STATUSES:
            return f"rate limited ({what})"
        return f"{'blocked' if self.status in _BLOCKED_STATUSES else 'exchange busy'} ({what})"


def classify_rejection(code: int | None, status: int | None = None, retry_after_ms: int | None = None) -> Rejection:
    """Sort a refusal by its Binance code and (when known) HTTP status."""
    if code in FATAL_SUBSCRIBE_CODES or status in _AUTH_STATUSES:
        kind = RejectionKind.FATAL
    elif (
        code in RATE_LIMIT_CODES
        or code in BUSY_CODES
        or status in _RATE_LIMIT_STATUSES
        or status in _BLOCKED_STATUSES
        or (status is not None and 500 <= status <= 599)
    ):
        kind = RejectionKind.THROTTLED
    elif code in CLOCK_SKEW_CODES:
        kind = RejectionKind.CLOCK
    else:
        kind = RejectionKind.OTHER
    if retry_after_ms is not None:
        retry_after_ms = min(max(0, retry_after_ms), _MAX_RETRY_AFTER_MS)
    return Rejection(kind, code, status, retry_after_ms)


def subscribe_rejection(error: str | None) -> int | None:
    """The Binance code of a rejected ``userDataStream.subscribe.signature`` (0 if it has none), else None."""
    if not error or "subscribe.signature failed" not in error:
        return None
    match = _CODE_RE.search(error)
    return int(match.group(1)) if match else 0


def retry_after_in(text: str, now_ms: int) -> int | None:
    """The wait an error text asks for (a ban's end as an epoch in ms, minus `now_ms`), if it names one."""
    match = _UNTIL_RE.search(text)
    return None if match is None else max(0, int(match.group(1)) - now_ms)


def stream_rejection(error: str | None, now_ms: int) -> Rejection | None:
    """A UBWA error text as a refusal by the exchange: a rejected subscription, or a handshake refused for a
    rate limit (HTTP 429/418). None for anything else (a broken socket is not a refusal)."""
    if not error:
        return None
    retry_after = retry_after_in(error, now_ms)
    code = subscribe_rejection(error)
    if code is not None:
        return classify_rejection(code, retry_after_ms=retry_after)
    match = _HANDSHAKE_RE.search(error)
    if match is not None and int(match.group(1)) in _RATE_LIMIT_STATUSES:
        return classify_rejection(None, int(match.group(1)), retry_after)
    return None
