"""The gateway's async core: one ccxt client, a priority queue, Binance's rate budget, safe retries.

Runs entirely on the gateway's event loop thread (the client's only owner). Requests are dispatched in
priority order as the rate budget admits them and then run concurrently, each with its own timeout, so one
hung request never stalls the others. Results are told back through each request's `reply_to`.

Dispatch is a plain function (`_pump`) run whenever something can change the answer: a request queued, a
slot freed, the budget's wait over, `wake()`. No dispatcher task sits between the queue and the send, and the
per-request cap is a timer on the request's own task rather than `asyncio.wait_for` (which wraps every call
in one more task): both cost loop iterations on every order.

What the exchange's answers feed back (response headers into the budget, throttling, the clock offset and its
re-sync) is in `ExchangeFeedback` (`_feedback.py`), a base of `GatewayCore`; the budget runs on server time.
A retry's backoff runs on the injected clock, and a call that lent its slot (in its backoff, at its write-ahead
gate) waits for one again in the queue, never past the cap: `ClockWaits` (`_waits.py`).
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
from loguru import logger

from actors.gateway._feedback import _CALL, ExchangeFeedback, GatewayStats, PendingCreates, _CallNote
from actors.gateway._waits import SlotWait, withdrawn_error
from engine.clock import Clock, WallClock
from engine.exchange import ExchangeError, map_error
from engine.exchange._ratebudget import Admit, RateBudget, RateLimit, Wait
from engine.exchange._retry import BackoffPolicy, ClockOffsetEstimator, should_retry
from engine.gateway import OP_SPECS, GatewayRequest, GatewayResult, Op, RequestQueue
from engine.venue import SEND_GATE, WITHDRAWN_AT_STOP, NotSent, ResponseHook, SendGate, Withdrawn

__all__ = ["GatewayCore", "GatewayStats"]

ClientFactory = Callable[[ResponseHook], Any]


@dataclass(slots=True)
class _Attempt:
    """A request being sent: its first turn in the queue (to wait there again for a slot) and its admission."""

    request: GatewayRequest
    turn: int
    admit: Admit


class GatewayCore(ExchangeFeedback):
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
        clock_check_ms: int = 60_000,
        max_create_hold_ms: int = 300_000,
    ) -> None:
        super().__init__()
        self._max_create_hold_ms = max_create_hold_ms  # a create held longer by the order limits is refused
        self._clock_check_ms = clock_check_ms  # the clock offset is measured again this often (0: at start only)
        self._clock_task: asyncio.Task[None] | None = None
        self._factory = client_factory
        self._clock = clock
        # Clock offset is about the host's wall clock against the server's, whatever clock drives timers.
        self._wall = wall_clock or WallClock()
        self.budget = budget or RateBudget()
        self._max_in_flight = max_in_flight
        self._timeout_s = request_timeout_s
        self._backoff = backoff or BackoffPolicy()
        self._rng = rng or random.Random(0)
        self._on_critical = on_critical
        self._queue: RequestQueue[SlotWait] = RequestQueue()
        self._offset = ClockOffsetEstimator()
        self._steady_offset = ClockOffsetEstimator()
        self._server_offset_ms = self._clock.now_ms() - self._steady_ms()  # the engine's clock until measured
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []  # `wait_idle` callers, woken as the last request ends
        self._dispatching = False
        self._budget_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._parked = 0  # creates waiting at their write-ahead gate for their commit, holding no slot
        self._resync: asyncio.Future[None] | None = None  # the clock re-sync under way after a -1021
        self._sent = 0
        self._failed = 0
        self.pending_creates = PendingCreates()
        """Creates handed over and not answered yet (`GatewayHandle.holds_create`)."""

    # ---- lifecycle (loop thread) -------------------------------------------------------------------
    async def start(self, *, sync_time: bool = True) -> None:
        """Create the client, measure the clock offset and start dispatching."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._watch_clock()
        self._client = self._factory(self._on_response)
        if sync_time:
            await self.sync_time()
        self._dispatching = True
        self._pump()  # whatever was queued before the start
        if sync_time and self._clock_check_ms:
            self._clock_task = asyncio.create_task(self.keep_clock_in_sync(self._clock_check_ms), name="clock-check")

    async def close(self) -> None:
        """Stop dispatching, let in-flight calls finish or cancel them, and close the client's session."""
        self._dispatching = False
        self._unwatch_clock()
        if self._clock_task is not None:
            self._clock_task.cancel()
        if self._wake is not None:
            self._wake.set()  # a backoff ends, unretried
        self._end_slot_waits()  # a retry is answered with its last failure; a create held at its gate does not leave
        if self._budget_timer is not None:
            self._budget_timer.cancel()
            self._budget_timer = None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._timeout_s)
        if self._client is not None:
            await self._client.close()

    async def wait_idle(self) -> None:
        """Return once nothing is queued or in flight (tests and shutdown use it as a barrier).

        No polling: the gateway can only become idle as a request ends (a queued one is sent first, a parked one
        is back in flight before it ends), and `_send` wakes the waiters then.
        """
        assert self._loop is not None
        while self._busy():
            waiter = self._loop.create_future()
            # Waiters that gave up (a timeout around this call) are dropped, not kept for the whole run.
            self._idle_waiters = [w for w in self._idle_waiters if not w.done()]
            self._idle_waiters.append(waiter)
            await waiter

    def _busy(self) -> bool:
        return bool(self._queue) or self._in_flight > 0 or self._parked > 0 or bool(self._retries)

    def _wake_idle_waiters(self) -> None:
        if self._idle_waiters and not self._busy():
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def set_limits(self, limits: tuple[RateLimit, ...]) -> None:
        """Replace the enforced limits (the exchange's `rateLimits`), keeping any Retry-After block or hold."""
        old, now = self.budget, self._server_now()
        self.budget = RateBudget(limits)
        if (blocked := old.blocked_until_ms()) > now:
            status = 418 if old.new_orders_halted(now) else 429
            self.budget.on_throttled(http_status=status, retry_after_s=None, now_ms=now, banned_until_ms=blocked)
        if (held := old.creates_held_until_ms()) > now:
            self.budget.on_throttled(
                http_status=429, retry_after_s=None, now_ms=now, banned_until_ms=held, orders_only=True
            )
        self._pump()

    # ---- dispatch ----------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Send what the in-flight cap and the budget admit now, in priority order (loop thread); a request under
        way that is back for a slot (`SlotWait`) is given its slot and admission, and goes on in its own task.

        A request the budget holds back stays queued and a timer retries at the budget's time; anything
        queued meanwhile (a cancel) calls this again and is judged on its own. A create held by the order
        count alone (its window full, a -1015) holds the creates behind it, in order, but not the other
        requests: those the weight budget admits go past it (a cancel must not wait for an order window).
        """
        if not self._dispatching:
            return
        queue, budget = self._queue, self.budget
        creates = True  # False once a create waits for the order count alone: only other requests go on
        retry_at = None
        now = self._server_now()
        while self._in_flight < self._max_in_flight:
            head = queue.head(creates=creates)
            if head is None:
                break
            request, turn, waiter = head
            now = self._server_now()
            if waiter is not None and waiter.granted.done():  # it stopped waiting (canceled): its place goes
                queue.pop(creates=creates)
                waiter.queued = False
                continue
            if waiter is None or waiter.admit is None:
                decision = budget.reserve(OP_SPECS[request.op].endpoint, now, weight=request.weight)
            else:  # held at its gate, admitted then: may it leave now (a hold begun meanwhile, its order window)?
                decision = budget.sent(waiter.admit, now)
            if isinstance(decision, Wait):
                if creates and request.op is Op.CREATE_ORDER and self.refuse_held(request, waiter, decision, now):
                    queue.pop(creates=creates)
                    continue
                if creates and not decision.orders_only:  # everything waits: the creates behind are judged too
                    self.refuse_every_held(decision, now)
                logger.debug("gateway waits {} ms: {}", decision.until_ms - now, decision.reason)
                retry_at = decision.until_ms if retry_at is None else min(retry_at, decision.until_ms)
                if creates and decision.orders_only:
                    creates = False
                    continue
                break
            queue.pop(creates=creates)
            self._in_flight += 1
            if waiter is not None:  # a request under way, back for a slot: it goes on in its own task
                waiter.queued = False
                waiter.granted.set_result(decision)
                continue
            # Its own context: started from a parking create's task, it inherited that create's gate (waited for its
            # commit, dropped as "not sent" when it failed). `_send` also sets each call's gate, or none.
            name, fresh = f"gw-{request.op}-{request.key}", contextvars.Context()
            task = asyncio.create_task(self._send(_Attempt(request, turn, decision)), name=name, context=fresh)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if retry_at is not None:
            self._retry_pump_in(max(0.001, (retry_at - now) / 1000))

    def _retry_pump_in(self, delay_s: float) -> None:
        assert self._loop is not None
        if self._budget_timer is not None:
            self._budget_timer.cancel()
        self._budget_timer = self._loop.call_later(delay_s, self._on_budget_timer)

    def _on_budget_timer(self) -> None:
        self._budget_timer = None
        self._pump()

    async def _send(self, call: _Attempt) -> None:
        request = call.request
        spec = OP_SPECS[request.op]
        attempt, previous_delay = 0, None
        sent_ms = self._clock.now_ms()
        try:
            while True:
                attempt += 1
                sent_ms = self._clock.now_ms()
                try:
                    data = await self._call(spec.ccxt_method, call)
                except NotSent as exc:
                    # The create's intent could not be made durable, so it never left; the requester hears
                    # of it from the write-ahead's failure, not from here — unless it was withdrawn (a stop).
                    self.budget.release(call.admit, success=False)
                    logger.bind(op=request.op.value, key=request.key, pair=request.pair).warning("not sent: {}", exc)
                    if isinstance(exc, Withdrawn):
                        why = self.withdrawn_why(request.key) or WITHDRAWN_AT_STOP
                        self._held_refusals.pop(request.key, None)
                        self._reply(GatewayResult(request, error=withdrawn_error(why), sent_ms=sent_ms))
                    return
                except Exception as exc:  # noqa: BLE001 - every failure is mapped into the error tree here
                    self.budget.release(call.admit, success=False)
                    # The status as the response hook saw it: a 5xx whose JSON body carries a code Binance lists
                    # nowhere is "outcome unknown", and ccxt's error text has the body only.
                    note = _CALL.get()
                    status = note.status if note is not None else None
                    error = map_error(ccxt_exc=exc, operation=request.op.value, http_status=status)
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
                    if delay is not None:
                        logger.warning(
                            "{} {} failed ({}); retry {} in {:.2f}s",
                            request.op,
                            request.key,
                            type(error).__name__,
                            attempt,
                            delay,
                        )
                        previous_delay = delay
                        if (again := await self._back_off(request, call.turn, delay)) is not None:
                            call.admit = again
                            continue
                        # Stopping: its requester hears the last failure, not nothing.
                        logger.info("{} {} not retried: the gateway is stopping", request.op, request.key)
                    self._failed += 1
                    self._reply(
                        GatewayResult(
                            request, error=error, attempts=attempt, sent_ms=sent_ms, done_ms=self._clock.now_ms()
                        )
                    )
                    return
                self.budget.release(call.admit, success=True)
                self._sent += 1
                self._reply(
                    GatewayResult(request, data=data, attempts=attempt, sent_ms=sent_ms, done_ms=self._clock.now_ms())
                )
                return
        finally:
            if request.op is Op.CREATE_ORDER:
                self.pending_creates.done(request.key)  # after its answer was told, if it has one
                if request.key not in self.pending_creates:
                    self.withdrawing.discard(request.key)
            self._in_flight -= 1
            self._pump()
            self._wake_idle_waiters()

    async def _call(self, ccxt_method: str, call: _Attempt) -> Any:
        """One ccxt call, capped. ccxt's own timeout fires first; the cap also covers a hang inside ccxt.

        The cap cancels this task from a timer and turns that into a `TimeoutError`; a cancellation from
        outside (shutdown) still propagates as such.
        """
        request = call.request
        task = asyncio.current_task()
        loop = self._loop
        assert task is not None and loop is not None
        expired: list[bool] = []
        timers: list[asyncio.TimerHandle] = []
        lent: str | None = None  # its slot lent: "parked" at its gate for its commit, or "queued" for a slot again
        note = _CallNote(is_create=request.op is Op.CREATE_ORDER)  # this attempt, as its response hook sees it
        _CALL.set(note)

        def expire() -> None:
            expired.append(True)
            task.cancel()

        def arm() -> None:
            # The request leaves now: the window its response's counters belong to is this one, and the
            # creates answered by now are in any order count the server sends back.
            note.sent_ms = self._server_now()
            if note.is_create or request.op is Op.CANCEL_ORDER:  # only order responses carry an order count
                note.mark = self.budget.order_mark(note.sent_ms, create=note.is_create)
            timers.append(loop.call_later(self._timeout_s + 1, expire))

        def park() -> None:
            # Waiting for its commit, the create lends its slot: a stuck commit must not hold back the
            # cancels and fallbacks queued behind it.
            nonlocal lent
            lent = "parked"
            self._in_flight -= 1
            self._parked += 1
            self._pump()

        async def opened() -> None:
            # Its commit done, it leaves as the budget allows now (a hold begun meanwhile, its order window). One
            # that kept its slot asks at once; one that lent it, or must wait for the budget (it lends its slot
            # then: the cancels behind it must not wait out a -1015 hold), waits in the queue for a slot as a
            # queued request does: many creates of one commit never go past the in-flight cap.
            nonlocal lent
            if not self._dispatching:
                raise NotSent("the gateway is stopping: held at its gate, it does not leave")
            if note.is_create and (why := self.withdrawn_why(request.key)):  # a gated cancel still goes
                raise Withdrawn(f"{why}: held at its gate, it does not leave")
            if lent is None:
                decision = self.budget.sent(call.admit, self._server_now())
                if isinstance(decision, Admit):
                    call.admit = decision
                    arm()
                    return
                self._in_flight -= 1
            else:
                self._parked -= 1
            lent = "queued"
            granted = await self._take_slot(request, call.turn, call.admit)
            if granted is None:  # the gateway stopped, or the order limits hold creates too long (`refuse_held`)
                if note.is_create and (why := self.withdrawn_why(request.key)):
                    raise Withdrawn(why)
                raise NotSent("the gateway stopped: held at its gate, it does not leave")
            lent, call.admit = None, granted
            if note.is_create and (why := self.withdrawn_why(request.key)):  # withdrawn while it waited for its slot
                raise Withdrawn(f"{why}: held at its gate, it does not leave")
            arm()

        if request.gate is None:
            SEND_GATE.set(None)  # only its own gate may hold its bytes
            arm()
        else:
            # The cap starts when the bytes may leave: a slow commit is not a slow exchange. Until then
            # only ccxt's own preparation runs, which cannot hang.
            SEND_GATE.set(SendGate(request.gate, opened, park))
        try:
            return await getattr(self._client, ccxt_method)(dict(request.params))
        except asyncio.CancelledError:
            if not expired or task.cancelling() > 1:
                raise
            task.uncancel()
            raise TimeoutError(f"{request.op.value} got no answer in {self._timeout_s + 1:.1f}s") from None
        finally:
            for timer in timers:
                timer.cancel()
            if lent == "parked":
                self._parked -= 1
            if lent is not None:  # it never left its gate (not durable, shutdown): `_send` releases a slot it holds
                self._in_flight += 1

    def _reply(self, result: GatewayResult) -> None:
        if result.request.reply_to is None:
            return
        try:
            result.request.reply_to(result)
        except pykka.ActorDeadError as exc:  # its asker stopped first (an engine stopping): nobody is waiting
            logger.debug("gateway reply to {} dropped: {}", result.request.key, exc)
        except Exception:  # noqa: BLE001 - a bad listener must not kill the gateway
            logger.exception("gateway reply to {} failed", result.request.key)
