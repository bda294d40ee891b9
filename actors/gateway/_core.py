"""The gateway's async core: one ccxt client, a priority queue, Binance's rate budget, safe retries.

Runs entirely on the gateway's event loop thread (the client's only owner). Requests are dispatched in
priority order as the rate budget admits them and then run concurrently, each with its own timeout, so one
hung request never stalls the others. Results are told back through each request's `reply_to`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from loguru import logger

from engine.clock import Clock, SystemClock
from engine.exchange import Banned, ClockSkew, ExchangeError, RateLimited, StopTrading, map_error
from engine.exchange._ratebudget import Admit, RateBudget, RateLimit, Wait
from engine.exchange._retry import BackoffPolicy, ClockOffsetEstimator, should_retry
from engine.gateway import OP_SPECS, GatewayRequest, GatewayResult, RequestQueue
from engine.venue import ResponseHook

__all__ = ["GatewayCore", "GatewayStats"]

ClientFactory = Callable[[ResponseHook], Any]


@dataclass(frozen=True)
class GatewayStats:
    """A snapshot for health and metrics."""

    queued: int
    in_flight: int
    sent: int
    failed: int
    blocked_until_ms: int
    orders_halted: bool
    clock_offset_ms: int


class GatewayCore:
    """Owns the exchange client and sends every request (see module docstring). Loop-thread only."""

    def __init__(
        self,
        client_factory: ClientFactory,
        *,
        clock: Clock,
        budget: RateBudget | None = None,
        max_in_flight: int = 32,
        request_timeout_s: float = 10.0,
        backoff: BackoffPolicy | None = None,
        rng: random.Random | None = None,
        wall_clock: Clock | None = None,
        on_critical: Callable[[ExchangeError], None] | None = None,
    ) -> None:
        self._factory = client_factory
        self._clock = clock
        # Clock offset is about the host's wall clock against the server's, whatever clock drives timers.
        self._wall = wall_clock or SystemClock()
        self.budget = budget or RateBudget()
        self._max_in_flight = max_in_flight
        self._timeout_s = request_timeout_s
        self._backoff = backoff or BackoffPolicy()
        self._rng = rng or random.Random(0)
        self._on_critical = on_critical
        self._queue = RequestQueue()
        self._offset = ClockOffsetEstimator()
        self._client: Any = None
        self._wake: asyncio.Event | None = None
        self._slot_free: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._sent = 0
        self._failed = 0

    # ---- lifecycle (loop thread) -------------------------------------------------------------------
    async def start(self, *, sync_time: bool = True) -> None:
        """Create the client, measure the clock offset and start dispatching."""
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._client = self._factory(self._on_response)
        if sync_time:
            await self.sync_time()
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="gateway-dispatch")

    async def close(self) -> None:
        """Stop dispatching, let in-flight calls finish or cancel them, and close the client's session."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._timeout_s)
        if self._client is not None:
            await self._client.close()

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

    # ---- intake (loop thread) ----------------------------------------------------------------------
    def enqueue(self, request: GatewayRequest) -> None:
        """Queue a request; the dispatcher sends it when its turn comes and the budget admits it."""
        self._queue.push(request)
        if self._wake is not None:
            self._wake.set()

    def stats(self) -> GatewayStats:
        """Current queue, in-flight and budget figures."""
        now = self._clock.now_ms()
        return GatewayStats(
            queued=len(self._queue),
            in_flight=self._in_flight,
            sent=self._sent,
            failed=self._failed,
            blocked_until_ms=self.budget.blocked_until_ms(),
            orders_halted=self.budget.new_orders_halted(now),
            clock_offset_ms=self._offset.offset_ms,
        )

    async def wait_idle(self) -> None:
        """Return once nothing is queued or in flight (tests and shutdown use it as a barrier)."""
        assert self._slot_free is not None
        while self._queue or self._in_flight:
            if self._in_flight:
                await self._wait(self._slot_free, None)
            else:
                await asyncio.sleep(0)  # let the dispatcher take what is queued

    def set_limits(self, limits: tuple[RateLimit, ...]) -> None:
        """Replace the enforced limits (the exchange's `rateLimits`), keeping any Retry-After block."""
        blocked = self.budget.blocked_until_ms()
        self.budget = RateBudget(limits)
        if blocked:
            self.budget.on_throttled(
                http_status=429, retry_after_s=None, now_ms=self._clock.now_ms(), banned_until_ms=blocked
            )

    def wake(self) -> None:
        """Re-evaluate waits now (the manual clock moved)."""
        if self._wake is not None:
            self._wake.set()

    # ---- dispatch ----------------------------------------------------------------------------------
    async def _wait(self, event: asyncio.Event, timeout_s: float | None) -> None:
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return
        finally:
            event.clear()

    async def _dispatch_loop(self) -> None:
        assert self._wake is not None
        assert self._slot_free is not None
        while True:
            request = self._queue.peek()
            if request is None:
                await self._wait(self._wake, None)
                continue
            if self._in_flight >= self._max_in_flight:
                await self._wait(self._slot_free, None)
                continue
            now = self._clock.now_ms()
            decision = self.budget.reserve(OP_SPECS[request.op].endpoint, now, weight=request.weight)
            if isinstance(decision, Wait):
                logger.debug("gateway waits {} ms: {}", decision.until_ms - now, decision.reason)
                await self._wait(self._wake, max(0.001, (decision.until_ms - now) / 1000))
                continue
            self._queue.pop()
            self._in_flight += 1
            task = asyncio.create_task(self._send(request, decision), name=f"gw-{request.op}-{request.key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _admit(self, request: GatewayRequest) -> Admit:
        assert self._wake is not None
        while True:
            now = self._clock.now_ms()
            decision = self.budget.reserve(OP_SPECS[request.op].endpoint, now, weight=request.weight)
            if isinstance(decision, Admit):
                return decision
            await self._wait(self._wake, max(0.001, (decision.until_ms - now) / 1000))

    async def _send(self, request: GatewayRequest, admit: Admit) -> None:
        spec = OP_SPECS[request.op]
        attempt, previous_delay = 0, None
        sent_ms = self._clock.now_ms()
        try:
            while True:
                attempt += 1
                sent_ms = self._clock.now_ms()
                try:
                    method = getattr(self._client, spec.ccxt_method)
                    # ccxt's own timeout fires first; this cap also covers a hang inside ccxt itself.
                    data = await asyncio.wait_for(method(dict(request.params)), self._timeout_s + 1)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every failure is mapped into the error tree here
                    self.budget.release(admit, success=False)
                    error = map_error(ccxt_exc=exc, operation=request.op.value)
                    if not error.exchange_message:
                        logger.debug("{} {} raised {!r} caused by {!r}", request.op, request.key, exc, exc.__cause__)
                    await self._after_error(request, error)
                    delay = should_retry(
                        request.op.value,
                        error,
                        attempt,
                        rng=self._rng,
                        policy=self._backoff,
                        previous_delay_s=previous_delay,
                    )
                    if delay is None:
                        self._failed += 1
                        self._reply(
                            GatewayResult(
                                request, error=error, attempts=attempt, sent_ms=sent_ms, done_ms=self._clock.now_ms()
                            )
                        )
                        return
                    logger.warning(
                        "{} {} failed ({}); retry {} in {:.2f}s",
                        request.op,
                        request.key,
                        type(error).__name__,
                        attempt,
                        delay,
                    )
                    previous_delay = delay
                    await asyncio.sleep(delay)
                    admit = await self._admit(request)
                    continue
                self.budget.release(admit, success=True)
                self._sent += 1
                self._reply(
                    GatewayResult(request, data=data, attempts=attempt, sent_ms=sent_ms, done_ms=self._clock.now_ms())
                )
                return
        finally:
            self._in_flight -= 1
            if self._slot_free is not None:
                self._slot_free.set()

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
            try:
                await self.sync_time()
            except Exception as exc:  # noqa: BLE001 - a failed resync is logged; the retry will show it
                logger.warning("clock re-sync after -1021 failed: {}", exc)
        if isinstance(error, StopTrading) and self._on_critical is not None:
            self._on_critical(error)

    def _on_response(self, status: int, headers: Mapping[str, str], method: str, url: str) -> None:
        now = self._clock.now_ms()
        self.budget.observe(headers, now)
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

    def _reply(self, result: GatewayResult) -> None:
        if result.request.reply_to is None:
            return
        try:
            result.request.reply_to(result)
        except Exception:  # noqa: BLE001 - a bad listener must not kill the gateway
            logger.exception("gateway reply to {} failed", result.request.key)
