"""The gateway actor: a thin pykka shell that owns the loop thread, the ccxt client and the core."""

from __future__ import annotations

import collections
import concurrent.futures
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pykka
from loguru import logger

from actors.gateway._core import ClientFactory, GatewayCore, GatewayStats
from engine.clock import Clock
from engine.exchange import ExchangeError
from engine.exchange._ratebudget import RateBudget, RateLimit
from engine.exchange._retry import BackoffPolicy
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.venue import LoopThread, ResponseHook, make_client

__all__ = ["GatewayActor", "GatewayHandle", "GatewaySettings"]

_STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class GatewaySettings:
    """How to reach the exchange. Credentials are excluded from repr so they can never be logged."""

    exchange_id: str = "binance"
    api_key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    rest_base: str | None = None
    testnet: bool = False
    timeout_ms: int = 10_000
    recv_window_ms: int = 5_000
    max_in_flight: int = 32
    start_timeout_s: float = 15.0
    max_create_hold_ms: int = 300_000
    """A create the order limits would hold longer than this is refused (`OrderLimitReached`), not sent later."""
    jitter_seed: int | None = None
    """Seed of the retry backoff's jitter (None: from the OS; `Engine.start` logs the one it uses)."""

    def client_factory(self) -> ClientFactory:
        """A factory building the ccxt client on the loop thread with these settings."""

        def build(on_response: ResponseHook) -> Any:
            return make_client(
                self.exchange_id,
                api_key=self.api_key,
                secret=self.secret,
                rest_base=self.rest_base,
                testnet=self.testnet,
                timeout_ms=self.timeout_ms,
                recv_window_ms=self.recv_window_ms,
                on_response=on_response,
            )

        return build


class GatewayHandle:
    """Thread-safe entry to the gateway's queue: callers never touch the client or the loop themselves."""

    def __init__(self, loop: LoopThread, core: GatewayCore) -> None:
        self._loop = loop
        self._core = core
        # Requests handed over by other threads. Only the first request of a batch wakes the loop (a
        # self-pipe write and a loop iteration); the rest ride along in the same hand-over.
        self._inbox: collections.deque[GatewayRequest] = collections.deque()
        self._drain_scheduled = False

    def submit(self, request: GatewayRequest) -> None:
        """Queue a request; its result is told to `request.reply_to`."""
        if request.op is Op.CREATE_ORDER:
            self._core.pending_creates.add(request.key)
        self._inbox.append(request)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            try:
                self._loop.call_soon(self._drain)
            except BaseException:
                self._drain_scheduled = False  # the loop is gone; the next submit raises too
                raise

    def _drain(self) -> None:
        """Loop thread: move every handed-over request into the core's queue, then dispatch once.

        The flag is cleared before taking, so a request appended after the last `popleft` finds it clear
        and schedules another drain: nothing can be left behind (appends and the flag are ordered by the GIL).
        """
        self._drain_scheduled = False
        inbox = self._inbox
        batch = []
        while inbox:
            batch.append(inbox.popleft())
        if batch:
            self._core.enqueue_many(batch)

    def holds_create(self, key: str) -> bool:
        """True while a create for client order id `key` is in the gateway, not answered yet (any thread)."""
        return key in self._core.pending_creates

    def withdraw_create(self, key: str) -> None:
        """Its request's caller canceled it: the create for `key`, if not sent yet, never leaves (any thread;
        `GatewayCore.withdraw_create`). After the creates handed over before it, as `close_creates`."""
        self._loop.call_soon(self._core.withdraw_create, key)

    def call(self, request: GatewayRequest) -> concurrent.futures.Future[GatewayResult]:
        """Queue a request and return a future of its result (for code outside the actor tree)."""
        future: concurrent.futures.Future[GatewayResult] = concurrent.futures.Future()
        original = request.reply_to

        def reply(result: GatewayResult) -> None:
            if original is not None:
                original(result)
            future.set_result(result)

        self.submit(
            GatewayRequest(
                request.op,
                request.params,
                request.priority,
                request.key,
                request.pair,
                reply,
                request.weight,
                gate=request.gate,  # a gated create still waits for its commit
            )
        )
        return future

    def set_limits(self, limits: Sequence[RateLimit]) -> None:
        """Enforce the exchange's own `rateLimits` (from exchangeInfo) from now on."""
        self._loop.call_soon(self._core.set_limits, tuple(limits))

    def close_creates(self) -> None:
        """The engine begins to stop: no create leaves from now on (`GatewayCore.close_creates`); the creates handed
        over before this call are withdrawn too, unless already sent."""
        self._loop.call_soon(self._core.close_creates)

    def wake(self) -> None:
        """Make every wait check its deadline again (a manual clock's move does this by itself)."""
        self._loop.call_soon(self._core.wake)

    def wait_retrying(self, count: int = 1, timeout_s: float = 30.0) -> tuple[int, ...]:
        """Block until at least `count` retries wait out their backoff; their deadlines on the injected clock.

        A retry goes again only once the clock passes its deadline: a test on a manual clock waits here, then
        moves the clock. Raises `TimeoutError` if fewer than `count` retries waited within `timeout_s`.
        """
        future = self._loop.submit(self._core.wait_retrying(count))
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def idle(self, timeout_s: float = 30.0) -> bool:
        """Block until nothing is queued or in flight; False if that did not happen within `timeout_s`."""
        try:
            self._loop.submit(self._core.wait_idle()).result(timeout_s)
        except concurrent.futures.TimeoutError:
            return False
        return True

    def stats(self, timeout_s: float = 5.0) -> GatewayStats:
        """Queue, in-flight and rate-budget figures."""

        async def read() -> GatewayStats:
            return self._core.stats()

        return self._loop.submit(read()).result(timeout_s)


class GatewayActor(pykka.ThreadingActor):
    """Sole owner of the exchange client (one ccxt async client on its own event loop thread)."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        clock: Clock,
        budget: RateBudget | None = None,
        on_critical: Callable[[ExchangeError], None] | None = None,
        client_factory: ClientFactory | None = None,
        sync_time: bool = True,
        backoff: BackoffPolicy | None = None,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._sync_time = sync_time
        self._loop = LoopThread("gateway-loop")
        self._core = GatewayCore(
            client_factory or settings.client_factory(),
            clock=clock,
            budget=budget,
            max_in_flight=settings.max_in_flight,
            request_timeout_s=settings.timeout_ms / 1000,
            on_critical=on_critical,
            max_create_hold_ms=settings.max_create_hold_ms,
            backoff=backoff,
            rng=random.Random(settings.jitter_seed),
        )
        self._handle = GatewayHandle(self._loop, self._core)

    def on_start(self) -> None:
        self._loop.start()
        self._loop.submit(self._core.start(sync_time=self._sync_time)).result(self._settings.start_timeout_s)
        logger.info("gateway started: {}", self._settings)

    def on_stop(self) -> None:
        try:
            self._loop.submit(self._core.close()).result(_STOP_TIMEOUT_S)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            logger.warning("gateway did not close cleanly: {}", exc)
        self._loop.stop()
        logger.info("gateway stopped")

    def handle(self) -> GatewayHandle:
        """The thread-safe handle other actors use to submit requests."""
        return self._handle
