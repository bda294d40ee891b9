"""What the exchange tells the gateway back: response headers, throttling, clock skew and the clock offset; and
`GatewayStats`, what the gateway tells up of it (`stats`); `PendingCreates`, the creates it holds.

`ExchangeFeedback` is a base of `GatewayCore` and, like it, runs on the gateway's event loop thread only.
Every response's headers feed the rate budget; a failed call's error may throttle the budget, re-sync the
clock after a -1021, or stop trading through `on_critical`.

The budget's windows are Binance's, so it is given server time: the local clock plus the measured offset.
A 418 or a weight 429 blocks every caller at once. A 429 on a create may instead be -1015 (too many new
orders), which must hold only creates: which one it is is in the body, known only once ccxt raises, so the
hook holds creates at once and the error's code decides, in `_after_error`, whether everything waits too.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from loguru import logger

from actors.gateway._waits import ClockWaits
from engine.clock import SystemClock
from engine.exchange import (
    Banned,
    ClockSkew,
    ExchangeError,
    OrderNotFound,
    RateLimited,
    StopTrading,
    parse_order_window_ms,
    parse_retry_after,
)
from engine.exchange._ratelimits import LimitKind
from engine.gateway import Op

if TYPE_CHECKING:
    from engine.clock import Clock
    from engine.exchange._ratebudget import RateBudget
    from engine.exchange._retry import ClockOffsetEstimator
    from engine.gateway import GatewayRequest

__all__ = ["ExchangeFeedback", "GatewayStats", "PendingCreates"]

_TOO_MANY_ORDERS = -1015
_UNDECIDED_HOLD_S = 1.0  # a create's 429 without Retry-After: creates wait this long for its body to say why
_WEIGHT_1M = (LimitKind.REQUEST_WEIGHT, 60_000)
_ORDERS_10S = (LimitKind.ORDERS, 10_000)
_LOOKUPS = frozenset({Op.FETCH_ORDER, Op.CANCEL_ORDER})
_MOVED_MS = 100  # a periodic clock check that moved the offset this much is logged at INFO
"""Calls whose "order not found" (-2013, -2011) is an answer about the order, not a failure of the call."""


@dataclass(slots=True)
class _CallNote:
    """One attempt of one call as its response hook sees it (one per attempt, in the call's own task)."""

    is_create: bool
    sent_ms: int | None = None  # server time the request left
    mark: tuple[int, ...] | None = None  # the budget's order mark then
    throttled: bool = False  # the answer was a 418/429 (applied to the budget by the hook)
    undecided: tuple[int, float | None, int] | None = None  # a create's 429: (status, Retry-After s, server ms)
    status: int | None = None  # the response's HTTP status (ccxt's error text drops it when the body is JSON)


_CALL: ContextVar[_CallNote | None] = ContextVar("bexec_gateway_call", default=None)
"""The current call's note (set in the call's task, read and filled by the response hook it runs)."""


class ExchangeFeedback(ClockWaits):
    """Under `GatewayCore`: clock offset, and the budget's and the clock's reaction to responses and errors."""

    budget: RateBudget
    _clock: Clock
    _wall: Clock
    _timeout_s: float
    _client: Any
    _offset: ClockOffsetEstimator
    _server_offset_ms: int  # the exchange's clock minus the steady clock (`_steady_ms`)
    _steady_offset: ClockOffsetEstimator
    _resync: asyncio.Future[None] | None
    _on_critical: Callable[[ExchangeError], None] | None
    _queue: Any
    _in_flight: int
    _parked: int
    _sent: int
    _failed: int
    _checks: int = 0
    """Clock offset measurements so far (the first is logged at INFO, later ones only when the offset moved)."""
    _not_found: int = 0
    """Of `_failed`, the lookups and cancels answered "order not found" (set on the instance at the first one)."""

    def stats(self) -> GatewayStats:
        """Current queue, in-flight and budget figures."""
        now = self._server_now()
        budget = self.budget
        by_label: dict[str, dict[str, int]] = {}
        found: dict[tuple[LimitKind, int], tuple[int, int]] = {}
        for limit in budget.limits:
            used = budget.used(limit, now)
            by_label[limit.label] = {"used": used, "limit": limit.limit, "ceiling": budget.effective_limit(limit)}
            found.setdefault((limit.kind, limit.interval_ms), (used, limit.limit))
        weight_used, weight_limit = found.get(_WEIGHT_1M, (0, 0))
        orders_used, orders_limit = found.get(_ORDERS_10S, (0, 0))
        return GatewayStats(
            queued=len(self._queue),
            in_flight=self._in_flight + self._parked + len(self._retries),  # each one's slot is lent meanwhile
            sent=self._sent,
            # An order the exchange does not know is an answer (every restored order after a restart on the
            # embedded simulator is one): counted apart, so the `api_errors` alert counts real failures only.
            failed=self._failed - self._not_found,
            not_found=self._not_found,
            blocked_until_ms=self._local_ms(budget.blocked_until_ms()),
            # New orders are held by a 418 ban or by a -1015 hold alike: either way no create leaves.
            orders_halted=budget.new_orders_halted(now) or now < budget.creates_held_until_ms(),
            clock_offset_ms=self._offset.offset_ms,
            used_weight_1m=weight_used,
            weight_limit_1m=weight_limit,
            orders_10s=orders_used,
            order_limit_10s=orders_limit,
            rate_limits=by_label,
            creates_held_until_ms=self._local_ms(budget.creates_held_until_ms()),
            retrying=len(self._retries),
            retry_at_ms=min(self._retries.values(), default=0),
            blocked_for_ms=max(0, budget.blocked_until_ms() - now),
        )

    def _local_ms(self, server_ms: int) -> int:
        """A budget time (server clock) in the local clock its readers time against; 0 stays 0 (never)."""
        return server_ms - (self._server_now() - self._clock.now_ms()) if server_ms else 0

    def _steady_ms(self) -> int:
        """What the exchange's time is estimated on: the steady clock under the engine's (`SystemClock`), which
        neither steps nor runs fast or slow while the engine's clock catches a wall-clock step up; a manual clock
        in tests."""
        return self._clock.steady_ms() if isinstance(self._clock, SystemClock) else self._clock.now_ms()

    def _server_now(self) -> int:
        """Binance's time now, as far as measured: the rate windows reset on its clock's boundaries. A Retry-After
        or a ban ends when the exchange says, whatever the host's wall clock did meanwhile."""
        return self._steady_ms() + self._server_offset_ms

    async def sync_time(self) -> int:
        """Measure server − local time with GET /api/v3/time; apply it to signed requests and the rate windows."""
        before = self._offset.offset_ms
        sent, steady_sent = self._wall.now_ms(), self._steady_ms()
        data = await asyncio.wait_for(self._client.public_get_time(), self._timeout_s)
        received, steady_received = self._wall.now_ms(), self._steady_ms()
        server = int(data["serverTime"])
        self._offset.add_sample(sent, server, received)
        # ccxt signs with nonce() = milliseconds() - timeDifference, so a server ahead of us is a negative one.
        self._client.options["timeDifference"] = -self._offset.offset_ms
        # Two offsets from one round trip: the wall clock's, which ccxt signs with (it moves when the host clock
        # steps), and the steady clock's, which the rate windows, Retry-Afters and bans are timed on (it does not).
        # A manual clock (tests) has no steady clock under it: its windows keep the wall clock's offset.
        if not isinstance(self._clock, SystemClock):
            if not self._offset.needs_resync:
                self._server_offset_ms = self._offset.offset_ms
        elif self._steady_offset.add_sample(steady_sent, server, steady_received):
            self._server_offset_ms = self._steady_offset.offset_ms
        # The periodic checks say something only when the offset moved.
        level = "INFO" if self._checks == 0 or abs(self._offset.offset_ms - before) >= _MOVED_MS else "DEBUG"
        self._checks += 1
        logger.log(level, "clock offset to exchange measured: {} ms", self._offset.offset_ms)
        return self._offset.offset_ms

    async def keep_clock_in_sync(self, every_ms: int) -> None:
        """Measure the clock offset again every `every_ms` (injected clock) while dispatching: a host clock that
        drifts or steps is otherwise found only by a signed request's -1021 (a failed request, then a re-send).

        Not while a Retry-After block is on (a request then turns a 429 into a ban), nor during a -1021 re-sync.
        """
        assert self._wake is not None
        due = self._clock.now_ms() + every_ms
        while self._dispatching:
            now = self._clock.now_ms()
            if now < due:
                await self._wait(self._wake, (due - now) / 1000)
                continue
            due = now + every_ms
            if self.budget.blocked_until_ms() > self._server_now() or not (self._resync is None or self._resync.done()):
                continue
            try:
                await self.sync_time()
            except Exception as exc:  # noqa: BLE001 - the next check, or a -1021's re-sync, tries again
                logger.warning("clock offset check failed: {!r}", exc)

    def _throttle(
        self,
        status: int,
        retry_after_s: float | None,
        now_ms: int,
        error: ExchangeError | None,
        sent_ms: int | None = None,
    ) -> None:
        """Apply a 418/429 (or a rate-limit error without that status) to the budget."""
        orders_only = error is not None and error.code == _TOO_MANY_ORDERS and not isinstance(error, Banned)
        self.budget.on_throttled(
            http_status=status,
            retry_after_s=retry_after_s,
            now_ms=now_ms,
            banned_until_ms=getattr(error, "banned_until_ms", None),
            orders_only=orders_only,
            # Binance's -1015 has no Retry-After: the window its message names says when creates may go again.
            window_ms=parse_order_window_ms(error.exchange_message) if error is not None and orders_only else None,
            sent_ms=sent_ms,
        )

    async def _after_error(self, request: GatewayRequest, error: ExchangeError) -> None:
        bound = logger.bind(op=request.op.value, key=request.key, pair=request.pair)
        if isinstance(error, OrderNotFound) and request.op in _LOOKUPS:
            # Never retried (a rejection), so each one is exactly one of the core's `_failed`.
            self._not_found += 1
            bound.info("exchange answered: order not found ({}, code={})", error, error.code)
            return
        bound.warning("exchange call failed: {} (code={}, status={})", error, error.code, error.http_status)
        note = _CALL.get()
        if note is not None and note.undecided is not None:
            # A create's 429: creates are held already; the body's code says whether everything waits too.
            status, retry_after_s, at_ms = note.undecided
            note.undecided = None
            self._throttle(status, retry_after_s, at_ms, error, note.sent_ms)
        elif isinstance(error, RateLimited | Banned) and not (
            note.throttled if note is not None else error.http_status in (418, 429)
        ):
            # A 429/418 response was already applied with its Retry-After header by `_on_response`; this is
            # for limits reported without that status (a -1003 body on another status).
            status = error.http_status or (418 if isinstance(error, Banned) else 429)
            self._throttle(status, error.retry_after_s, self._server_now(), error)
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
        _CALL.set(None)  # this task copied the failed call's context: its time request is no gateway call
        while (blocked := self.budget.blocked_until_ms()) > (now := self._server_now()):
            if not self._dispatching:
                return  # stopping: the calls awaiting this re-sync are answered, not retried
            await self._wait(self._wake, (blocked - now) / 1000)
        try:
            await self.sync_time()
        except Exception as exc:  # noqa: BLE001 - a failed resync is logged; the retry will show it
            logger.warning("clock re-sync after -1021 failed: {}", exc)

    def _on_response(self, status: int, headers: Mapping[str, str], method: str, url: str) -> None:
        now = self._server_now()
        note = _CALL.get()
        # Counted in the window the request was sent in (a response straddling a minute boundary must not carry
        # the old minute's count into the new one); it learns once per header name which ones are counters.
        if note is None:
            self.budget.observe(headers, now)
        else:
            note.status = status
            self.budget.observe(headers, now, sent_ms=note.sent_ms, mark=note.mark)
        if status not in (418, 429):
            return
        retry_after = parse_retry_after(headers)
        if note is not None:
            note.throttled = True
        if status == 429 and note is not None and note.is_create:
            # -1003 or -1015? Creates wait either way, at once; `_after_error` reads the code and decides the rest.
            note.undecided = (status, retry_after, now)
            # Without a Retry-After (a -1015 never has one), a second until the body is read says how long.
            hold_s = _UNDECIDED_HOLD_S if retry_after is None else retry_after
            self.budget.on_throttled(http_status=status, retry_after_s=hold_s, now_ms=now, orders_only=True)
            logger.error("429 on a create: new orders wait for Retry-After={}", retry_after)
            return
        # Block every other caller at once, before this error even reaches its requester.
        self._throttle(status, retry_after, now, None)
        logger.error(
            "{} on {} {}: every request waits for Retry-After={}", status, method, urlsplit(url).path, retry_after
        )


@dataclass(frozen=True)
class GatewayStats:
    """A snapshot for health and metrics."""

    queued: int
    """Requests waiting for a slot or the rate budget: new ones, and those back for a slot again (a retry past its
    backoff, a create past its write-ahead gate)."""
    in_flight: int
    """Requests holding a slot, and those lending theirs: parked at their gate, waiting out a retry backoff."""
    sent: int
    failed: int
    blocked_until_ms: int
    """End of a Retry-After block on every request (the engine's clock; 0: never blocked)."""
    orders_halted: bool
    clock_offset_ms: int
    used_weight_1m: int = 0
    """Request weight counted in the current minute (the larger of the local and the server's count)."""
    weight_limit_1m: int = 0
    """The exchange's request-weight limit per minute (0: not enforced)."""
    orders_10s: int = 0
    """Orders counted in the current 10-second window."""
    order_limit_10s: int = 0
    """The exchange's order limit per 10 seconds (0: not enforced)."""
    rate_limits: dict[str, dict[str, int]] = field(default_factory=dict)
    """Every enforced limit by label (e.g. "REQUEST_WEIGHT/60s"): used, limit and the budget's own ceiling."""
    creates_held_until_ms: int = 0
    """End of a hold on creates only, after a 429 -1015 (the engine's clock; 0: never held)."""
    not_found: int = 0
    """Order lookups and cancels answered "order not found" (-2013, -2011): answers, not counted in `failed`."""
    retrying: int = 0
    """Idempotent calls waiting out their retry backoff (counted in `in_flight` too)."""
    retry_at_ms: int = 0
    """When the first of their backoffs ends (the engine's clock, epoch ms; 0: none waits): it then waits for a
    slot and the budget in the queue, at its priority."""
    blocked_for_ms: int = 0
    """What is left of the Retry-After block (0: none): unlike `blocked_until_ms`, readable without the engine's
    clock, which is off the wall clock while it catches a wall-clock step up."""


class PendingCreates:
    """The client order ids of the creates the gateway holds — handed over, queued (behind a full order window or a
    -1015 hold, for hours perhaps), parked at their write-ahead gate or in flight — until their answer is told.

    Thread-safe. A pair actor restarted over a book with an unacknowledged create asks here before it concludes
    that the answer died with its predecessor: a create still held here will be answered, and looking it up
    meanwhile finds nothing, which would end in a second create under the same id.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: Counter[str] = Counter()

    def add(self, key: str) -> None:
        """A create for `key` was handed to the gateway."""
        with self._lock:
            self._keys[key] += 1

    def done(self, key: str) -> None:
        """The create for `key` was answered (or dropped unsent)."""
        with self._lock:
            left = self._keys[key] - 1
            if left > 0:
                self._keys[key] = left
            else:
                del self._keys[key]

    def __contains__(self, key: object) -> bool:
        return self._keys.get(key, 0) > 0  # type: ignore[call-overload]
