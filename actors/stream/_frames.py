"""Frame handling that needs no thread: watchdog probe replies, bookTicker parsing, latest-price coalescing.

User data frames are parsed by `engine.exchange.parse_user_data`; this module only recognises the replies to the
watchdog's own ``session.status`` probes first (the engine's parser keeps no response bodies).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from engine.domain import Symbol
from engine.exchange import BadFrame, UserDataReport, parse_user_data

__all__ = [
    "PROBE_PREFIX",
    "AccountFrame",
    "LatestPrices",
    "PriceUpdate",
    "ProbeReply",
    "classify_user_frame",
    "parse_book_ticker",
    "probe_request",
]

PROBE_PREFIX = "bexec-wd-"
"""Ids of the watchdog's WS API requests; UBWA delivers their replies to the data callback like events."""

# Replies start with {"id":"…" (Binance and the simulator both put the id first); scanning only the head keeps
# the check off the hot path of large frames, as UBWA does for its own subscribe ack.
_HEAD = 64


@dataclass(frozen=True, slots=True)
class ProbeReply:
    """A reply to a watchdog probe.

    Attributes:
        probe_id: The probe's request id.
        ok: Status 200.
        subscribed: The connection has an active user data subscription (``session.status``).
        status: The reply's HTTP-like status.
        retry_after_ms: For a 429/418 (the WS API shares the IP's request weight with REST): how long the exchange
            asked to wait, from ``error.data`` (``retryAfter`` minus ``serverTime``: both the exchange's clock, so
            no offset to ours enters), None if it did not say.
    """

    probe_id: str
    ok: bool
    subscribed: bool
    status: int | None = None
    retry_after_ms: int | None = None

    @property
    def throttled(self) -> bool:
        """Refused for a rate limit or an IP ban (429/418)."""
        return self.status in (418, 429)


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    """Best bid/ask of one symbol; `event_time_ms` is when it was received (bookTicker carries no time)."""

    symbol: Symbol
    bid: Decimal
    ask: Decimal
    event_time_ms: int


def probe_request(probe_id: str) -> dict[str, Any]:
    """The WS API request the watchdog sends: ``session.status`` says whether a user data subscription is active."""
    return {"id": probe_id, "method": "session.status"}


def _head(raw: bytes | str) -> str:
    head = raw[:_HEAD]
    return head.decode("ascii", "replace") if isinstance(head, bytes) else head


@dataclass(frozen=True, slots=True)
class AccountFrame:
    """An account event (`outboundAccountPosition`, `balanceUpdate`) left unparsed: Binance sends one right
    after every fill's execution report, and parsing it on UBWA's thread would hold the interpreter while the
    pair actor waits to apply the fill. Whoever needs it parses it (`parse()`), off the hot path."""

    raw: bytes | str

    def parse(self) -> UserDataReport:
        """The typed report (raises `BadFrame` like `parse_user_data`)."""
        return parse_user_data(self.raw)


_ACCOUNT_EVENTS = ('"e":"outboundAccountPosition"', '"e":"balanceUpdate"')


def _retry_after_ms(error: object) -> int | None:
    """``error.data.retryAfter - error.data.serverTime`` (ms, at least 0), if the error says when to retry."""
    data = error.get("data") if isinstance(error, dict) else None
    if not isinstance(data, dict):
        return None
    retry_at, server_time = data.get("retryAfter"), data.get("serverTime")
    if not isinstance(retry_at, int) or not isinstance(server_time, int) or isinstance(retry_at, bool):
        return None
    return max(0, retry_at - server_time)


def classify_user_frame(raw: bytes | str) -> UserDataReport | ProbeReply | AccountFrame:
    """A watchdog probe reply, an account event left for later, or whatever `parse_user_data` makes of the frame.

    Raises:
        BadFrame: the frame is not a well-formed user data frame.
    """
    if PROBE_PREFIX in _head(raw):
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BadFrame("probe reply is not JSON", raw) from None
        request_id = frame.get("id") if isinstance(frame, dict) else None
        if isinstance(request_id, str) and request_id.startswith(PROBE_PREFIX):
            result = frame.get("result")
            subscribed = isinstance(result, dict) and result.get("userDataStream") is True
            status = frame.get("status")
            status = status if isinstance(status, int) else None
            return ProbeReply(request_id, status == 200, subscribed, status, _retry_after_ms(frame.get("error")))
    head = _head(raw)
    if any(marker in head for marker in _ACCOUNT_EVENTS):
        return AccountFrame(raw)
    return parse_user_data(raw)


def _decimal(data: dict[str, Any], key: str, raw: bytes | str) -> Decimal:
    value = data.get(key)
    if not isinstance(value, str):
        raise BadFrame(f"bookTicker field {key!r} must be a string", raw)
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise BadFrame(f"bookTicker field {key!r} is not a decimal", raw) from None
    if not out.is_finite() or out < 0:
        raise BadFrame(f"bookTicker field {key!r} is out of range", raw)
    return out


def parse_book_ticker(raw: bytes | str, received_ms: int) -> PriceUpdate | None:
    """A bookTicker frame (raw or combined-stream wrapped) → `PriceUpdate`; None for a subscribe's success reply.

    Raises:
        BadFrame: the frame is neither a bookTicker nor a success reply (a refused subscribe included).
    """
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadFrame("not JSON", raw) from None
    if not isinstance(frame, dict):
        raise BadFrame("not a JSON object", raw)
    if "s" not in frame and "data" not in frame and frame.keys() & {"id", "result", "error", "code"}:
        # A reply to one of UBWA's requests, not a price.
        refused = frame.get("error") or ({"code": frame["code"], "msg": frame.get("msg")} if "code" in frame else None)
        if refused is None:
            return None  # {"result": null, "id": 1}: done
        # A SUBSCRIBE refused (Binance: {"code": 2, "msg": "Invalid request: …", "id": N}): UBWA asks for every stream
        # but one that way, and the stream stays "connected". The symbols it left unpriced are polled
        # (`PriceRouter.stale`); this says why, in the log and the errors table.
        raise BadFrame(f"the exchange refused a subscription: {refused}", raw)
    data = frame.get("data", frame) if "stream" in frame else frame
    if not isinstance(data, dict):
        raise BadFrame("'data' must be an object", raw)
    symbol = data.get("s")
    if not isinstance(symbol, str) or not symbol:
        raise BadFrame("bookTicker without a symbol", raw)
    return PriceUpdate(Symbol(symbol), _decimal(data, "b", raw), _decimal(data, "a", raw), received_ms)


class LatestPrices:
    """Latest price per symbol between two drains: a burst of updates collapses to one per symbol.

    `offer` runs on UBWA's thread, `drain` on the actor's; the lock is held for a dict operation only.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, PriceUpdate] = {}
        self.offered = 0
        self.drained = 0

    def offer(self, update: PriceUpdate) -> bool:
        """Keep `update` as the latest of its symbol; True when a drain must be scheduled (board was empty)."""
        with self._lock:
            was_empty = not self._latest
            self._latest[update.symbol] = update
            self.offered += 1
        return was_empty

    def drain(self) -> list[PriceUpdate]:
        """Take the latest update of every symbol offered since the last drain."""
        with self._lock:
            out = list(self._latest.values())
            self._latest = {}
            self.drained += len(out)
        return out
