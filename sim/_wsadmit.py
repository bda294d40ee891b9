"""Who may open a WebSocket, and the WS API's throttling errors (binance-spot.md §5, §6.5).

A handshake is refused before the upgrade, with a plain HTTP answer: the status (429 or 418), a ``Retry-After``
header (seconds) and Binance's ``{"code", "msg"}`` body — what a WebSocket client sees as a rejected handshake
(UBWA: a 429 crashes the stream for good, anything else is retried every 0.1 s). In order:

1. the attempt is counted against the IP's connection budget (300 per 5 minutes per service), refused or not;
2. a ``handshake`` fault on the connection's kind refuses it as specified;
3. a WS API handshake from a banned IP is refused with 418 (the ban's end in ``Retry-After``);
4. an attempt over the budget is refused with 429;
5. a WS API handshake costs 2 request weight, checked like a REST request's (429, then 418 once the violations
   earn a ban); the weight is charged once admitted.
"""

from __future__ import annotations

import orjson
from aiohttp import web
from loguru import logger

from sim._core import SimCore
from sim._errors import SimError
from sim._faults import HANDSHAKE_KINDS, FaultSpec

__all__ = ["CONNECT_WEIGHT", "RetryLater", "admit", "handshake_fault_error", "service_of", "throttled"]

CONNECT_WEIGHT = 2
"""Request weight of connecting to the WS API."""
_THROTTLE_STATUSES = frozenset({418, 429})


class RetryLater(SimError):
    """A 429/418 on the WS API: its error carries ``data`` with ``serverTime`` and ``retryAfter`` (epoch ms)."""

    def __init__(self, error: SimError, server_time: int, retry_at: int) -> None:
        super().__init__(error.status, error.code, error.msg, error.retry_after)
        self.data = {"serverTime": server_time, "retryAfter": retry_at}

    def body(self) -> dict[str, object]:
        """The JSON error body, with ``data``."""
        return {**super().body(), "data": self.data}


def service_of(kind: str) -> str:
    """The connection budget a connection kind counts against: the WS API's or the streams' host."""
    return "ws-api" if kind == "ws-api" else "stream"


def handshake_fault_error(fault: FaultSpec, now: int, weight_limit: int) -> SimError:
    """The refusal a ``handshake`` fault stands for: a 429 or 418 worded as Binance's -1003 (``Retry-After`` from
    ``retry_after``), any other status with the fault's code and message."""
    if fault.status == 429:
        msg = (
            f"Too much request weight used; current limit is {weight_limit} request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API."
        )
        return SimError(429, -1003, msg, retry_after=fault.retry_after)
    if fault.status == 418:
        msg = (
            f"Way too much request weight used; IP banned until {now + fault.retry_after * 1000}. "
            "Please use WebSocket Streams for live updates to avoid bans."
        )
        return SimError(418, -1003, msg, retry_after=fault.retry_after)
    return SimError(fault.status, fault.code, fault.msg)


def throttled(error: SimError, now: int, retry_at: int) -> SimError:
    """`error` as the WS API answers it: a 429/418 with ``data.retryAfter``, anything else unchanged."""
    return RetryLater(error, now, retry_at) if error.status in _THROTTLE_STATUSES else error


def _refusal(error: SimError) -> web.Response:
    headers = {"Content-Type": "application/json"}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return web.Response(status=error.status, body=orjson.dumps(error.body()), headers=headers)


def admit(core: SimCore, request: web.BaseRequest, kind: str) -> web.Response | None:
    """None if a ``kind`` connection (``ws-api`` | ``market`` | ``listen-key``) may be opened now (its weight is
    then charged), else the HTTP answer that refuses the handshake."""
    now = core.now()
    ip = request.remote or "local"
    limiter = core.limiter
    over_budget = limiter.count_connection(ip, service_of(kind), now)
    try:
        if core.faults.entries:
            for fault in core.faults.take(kind, HANDSHAKE_KINDS, now, request.path):
                raise handshake_fault_error(fault, now, core.config.rate_limits.request_weight_per_minute)
        if kind == "ws-api":
            limiter.check_banned(ip, now)
        if over_budget is not None:
            raise over_budget
        if kind == "ws-api":
            limiter.check_weight(ip, CONNECT_WEIGHT, now)
    except SimError as err:
        logger.info("sim refused a {} handshake from {}: HTTP {} {}", kind, ip, err.status, err.msg)
        return _refusal(err)
    if kind == "ws-api":
        limiter.add_weight(ip, CONNECT_WEIGHT, now)
    return None
