"""The exchange's clock for the user data subscription's signature: host time plus a measured offset.

Binance refuses a signed request whose timestamp is more than 1 s ahead of its clock, or older than the
``recvWindow`` (-1021). The gateway corrects REST requests with the offset it measures, but the WS API
subscription is signed on UBWA's thread, which must not ask the gateway anything: so the stream actor measures
its own offset (one ``GET /api/v3/time``, weight 1) from its thread, and UBWA's thread only reads the result.
Blocking stdlib HTTP with a timeout, like the listenKey calls.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

import orjson
from loguru import logger

from engine.clock import WallClock
from engine.exchange import ClockOffsetEstimator

__all__ = ["ServerTime"]


class ServerTime:
    """Server-minus-host offset (measured on the actor's thread) and the timestamp to sign with (any thread).

    Args:
        rest_url: REST base (``https://api.binance.com``) whose ``/api/v3/time`` is asked.
        wall_ms: The host's wall clock in epoch ms. Not the actor's injected clock: the signature is checked
            against the exchange's real clock, and a manual test clock runs on its own time.
        timeout_s: The measurement's HTTP timeout.
    """

    def __init__(
        self,
        rest_url: str,
        wall_ms: Callable[[], int] | None = None,
        timeout_s: float = 5.0,  # float-ok: seconds
    ) -> None:
        self._url = rest_url.rstrip("/") + "/api/v3/time"
        self._wall_ms = wall_ms or WallClock().now_ms
        self._timeout_s = timeout_s
        self._estimator = ClockOffsetEstimator()
        # A plain int UBWA's thread reads: the estimator's samples are only touched on the actor's thread.
        self._offset_ms = 0

    def __repr__(self) -> str:
        return f"ServerTime({self._url!r}, offset_ms={self._offset_ms})"

    @property
    def offset_ms(self) -> int:
        """The last measured server − host offset (0 before any measurement)."""
        return self._offset_ms

    def now_ms(self) -> int:
        """The exchange's time now, as well as known: the timestamp a subscription is signed with."""
        return self._wall_ms() + self._offset_ms

    def measure(self) -> int | None:
        """One round trip to ``/api/v3/time``: the new offset, or None when it failed (the old one is kept)."""
        sent = self._wall_ms()
        try:
            with urllib.request.urlopen(self._url, timeout=self._timeout_s) as response:
                body = response.read()
            server_ms = orjson.loads(body)["serverTime"]
        except Exception as exc:  # noqa: BLE001 - logged; any failure (http.client's IncompleteRead is no OSError)
            # keeps the old offset: escaping, it would stop the stream actor, and fills would come only by REST.
            logger.warning("measuring the clock offset to the exchange failed ({}); keeping {} ms", exc,
                           self._offset_ms)  # fmt: skip
            return None
        received = self._wall_ms()
        if not isinstance(server_ms, int) or not self._estimator.add_sample(sent, server_ms, received):
            logger.warning("clock offset sample rejected (serverTime={!r}, round trip {} ms)", server_ms,
                           received - sent)  # fmt: skip
            return None
        self._offset_ms = self._estimator.offset_ms
        logger.info("clock offset to the exchange (for the user data subscription) measured: {} ms", self._offset_ms)
        return self._offset_ms

    def remeasure(self) -> int | None:
        """The exchange said the clock is off (-1021): forget the old samples (the host clock moved) and measure."""
        self._estimator.mark_skew()
        return self.measure()
