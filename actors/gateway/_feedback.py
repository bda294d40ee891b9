"""What the exchange tells the gateway back: response headers, throttling, clock skew and the clock offset.

`ExchangeFeedback` is mixed into `GatewayCore` and, like it, runs on the gateway's event loop thread only.
Every response's headers feed the rate budget (a 429/418 blocks every caller at once); a failed call's error
may throttle the budget, re-sync the clock after a -1021, or stop trading through `on_critical`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from loguru import logger

from engine.exchange import Banned, ClockSkew, ExchangeError, RateLimited, StopTrading

if TYPE_CHECKING:
    from engine.clock import Clock
    from engine.exchange._ratebudget import RateBudget
    from engine.exchange._retry import ClockOffsetEstimator
    from engine.gateway import GatewayRequest

__all__ = ["ExchangeFeedback"]

_SENT_MS: ContextVar[int | None] = ContextVar("bexec_gateway_sent_ms", default=None)
"""When the current call's request left (set in the call's task, read by the response hook it runs)."""


class ExchangeFeedback:
    """Mixed into `GatewayCore`: clock offset, and the budget's and the clock's reaction to responses and errors."""

    budget: RateBudget
    _clock: Clock
    _wall: Clock
    _timeout_s: float
    _client: Any
    _offset: ClockOffsetEstimator
    _wake: asyncio.Event | None
    _resync: asyncio.Future[None] | None
    _on_critical: Callable[[ExchangeError], None] | None
    _wait: Callable[[asyncio.Event, float | None], Awaitable[None]]

    async def sync_time(self) -> int:
        """Measure server − local time with GET /api/v3/time and apply it to signed requests."""
        sent = self._wall.now_ms()
        data = await asyncio.wait_for(self._client.public_get_time(), self._timeout_s)
        received = self._wall.now_ms()
        self._offset.add_sample(sent, int(data["serverTime"]), received)
        # ccxt signs with nonce() = milliseconds() - timeDifference, so a server ahead of us is a negative one.
        self._client.options["timeDifference"] = -self._offset.offset_ms
        logger.info("clock offset to exchange measured: {} ms", self._offset.offset_ms)
        return self._offset.offset_ms

    async def _after_error(self, request: GatewayRequest, error: ExchangeError) -> None:
        logger.bind(op=request.op.value, key=request.key, pair=request.pair).warning(
            "exchange call failed: {} (code={}, status={})", error, error.code, error.http_status
        )
        if isinstance(error, RateLimited | Banned) and error.http_status not in (418, 429):
            # A 429/418 response was already applied with its Retry-After header by `_on_response`; this is
            # for limits reported without that status (a -1003 body on another status).
            self.budget.on_throttled(
                http_status=error.http_status or (418 if isinstance(error, Banned) else 429),
                retry_after_s=error.retry_after_s,
                now_ms=self._clock.now_ms(),
                banned_until_ms=getattr(error, "banned_until_ms", None),
            )
        if isinstance(error, ClockSkew):
            self._offset.mark_skew()
            # One re-sync for every -1021 of the moment (each failed request awaits the same one), and not
            # while a Retry-After block is on: a request then is what turns a 429 into a 418 ban.
            if self._resync is None or self._resync.done():
                self._resync = asyncio.ensure_future(self._resync_clock())
            await asyncio.shield(self._resync)
        if isinstance(error, StopTrading) and self._on_critical is not None:
            self._on_critical(error)

    async def _resync_clock(self) -> None:
        assert self._wake is not None
        while (blocked := self.budget.blocked_until_ms()) > (now := self._clock.now_ms()):
            await self._wait(self._wake, (blocked - now) / 1000)
        try:
            await self.sync_time()
        except Exception as exc:  # noqa: BLE001 - a failed resync is logged; the retry will show it
            logger.warning("clock re-sync after -1021 failed: {}", exc)

    def _on_response(self, status: int, headers: Mapping[str, str], method: str, url: str) -> None:
        now = self._clock.now_ms()
        # Counted in the window the request was sent in (a response straddling a minute boundary must not carry
        # the old minute's count into the new one); it learns once per header name which ones are counters.
        self.budget.observe(headers, now, sent_ms=_SENT_MS.get())
        if status in (418, 429):
            # Block every other caller at once, before this error even reaches its requester.
            retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            self.budget.on_throttled(
                http_status=status,
                retry_after_s=float(retry_after) if retry_after and retry_after.isdigit() else None,  # float-ok: s
                now_ms=now,
            )
            logger.error(
                "{} on {} {}: every request waits for Retry-After={}", status, method, urlsplit(url).path, retry_after
            )
