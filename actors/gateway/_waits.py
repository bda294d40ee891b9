"""The gateway's waits: an idempotent call waiting out its retry backoff on the injected clock, and a request
under way that lent its in-flight slot (back from its backoff, or from its write-ahead gate) waiting for a slot
again.

A backoff waits on `_wake` until the injected clock reaches its deadline, with a real timer of the time left as
a bound. With the system clock that timer is the wait: a retry waits its delay, once, with no polling. A manual
clock moves only when told to, and no real time has to pass for it: each move wakes the gateway
(`ManualClock.on_move`, which the ticker's `advance` moves too), and the backoff checks its deadline again; the
real timer then only re-checks, so a retry never goes out before the clock passes its deadline, however much real
time passes.

A call lends its slot while it cannot use it (its backoff, its commit), so the cancels and fallbacks queued
behind it go meanwhile. Back, it does not take a slot past the in-flight cap: it waits in the request queue
(`RequestQueue.requeue`), at its priority and first turn, until `_pump` gives it a slot and the rate budget lets
it go, exactly as a queued request is sent. Hundreds of lookups failing together in an outage then come back one
slot at a time, behind the cancels queued meanwhile, instead of all at once.

`close()` turns dispatching off, sets `_wake` and ends every wait for a slot (`_end_slot_waits`): every wait ends
at once, a retry is answered with its last failure instead of going out again, and a create held at its gate does
not leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from loguru import logger

from engine.clock import ManualClock
from engine.exchange import ExchangeError, OrderLimitReached, Rejected
from engine.exchange._ratebudget import Admit, Wait
from engine.gateway import GatewayResult, Op
from engine.venue import CANCELED_BEFORE_SENT, HELD_PAST_LIMIT, WITHDRAWN_AT_STOP

if TYPE_CHECKING:
    from actors.gateway._feedback import PendingCreates
    from engine.clock import Clock
    from engine.gateway import GatewayRequest, RequestQueue

__all__ = ["ClockWaits", "SlotWait", "withdrawn_error"]


@dataclass(eq=False, slots=True)
class SlotWait:
    """A request under way queued again for a slot: `_pump` answers `granted` with its admission once it has a
    slot and the budget lets it go, `close()` with None."""

    admit: Admit | None
    """None: the budget is asked as for a new request (a retry); an admission: the budget charged it already and
    is asked whether it may leave now (`RateBudget.sent`: a create held at its gate)."""
    granted: asyncio.Future[Admit | None]
    queued: bool = True  # in the request queue until `_pump` pops it or it stops waiting


class ClockWaits:
    """Under `ExchangeFeedback` and `GatewayCore`: their waits (see module docstring)."""

    _clock: Clock
    _loop: asyncio.AbstractEventLoop | None
    _queue: RequestQueue[SlotWait]
    _dispatching: bool
    _in_flight: int
    _pump: Callable[[], None]
    _local_ms: Callable[[int], int]
    _on_critical: Callable[[ExchangeError], None] | None
    _max_create_hold_ms: int
    pending_creates: PendingCreates

    def __init__(self) -> None:
        self._creates_closed = False  # `close_creates`: the engine is stopping
        self.withdrawing: set[str] = set()  # `withdraw_create`: keys whose create must not leave (a caller's cancel)
        self._wake: asyncio.Event | None = None  # set by `wake()`: every wait checks its deadline again
        self._retries: dict[int, int] = {}
        """Retries waiting out their backoff: the deadline (injected clock, epoch ms) by the id of the call's task."""
        self._retry_waiters: list[asyncio.Future[None]] = []  # `wait_retrying` callers, woken as a retry waits
        self._slot_waits: set[SlotWait] = set()  # requests under way queued again for a slot
        self._unwatch: Callable[[], None] | None = None
        self._held_refusals: dict[str, str] = {}  # creates at their gate refused for a long hold: why, by key
        self._refused_until = 0  # the hold (server ms) the last `OrderLimitReached` told of

    # ---- intake (loop thread) ----------------------------------------------------------------------
    def enqueue(self, request: GatewayRequest) -> None:
        """Queue a request; it is sent when its turn comes and the budget admits it (now, if it can be)."""
        if request.op is Op.CREATE_ORDER:
            self.pending_creates.add(request.key)  # `GatewayHandle.submit` counts the creates it hands over
        self.enqueue_many([request])

    def enqueue_many(self, requests: list[GatewayRequest]) -> None:
        """Queue several requests (one cross-thread hand-over), then dispatch in priority order."""
        for request in requests:
            if self._creates_closed and request.op is Op.CREATE_ORDER:
                self._withdraw(request)
            else:
                self._queue.push(request)
        self._pump()

    def close_creates(self) -> None:
        """The engine begins to stop: no create leaves from now on — `stop()` means nothing new is traded, and a
        create held back by the order-rate limit went out seconds into the stop, unseen by the stopped stream.
        Those queued, handed over later, or held at their gate are answered `withdrawn_error` (the pair's book
        closes them as never sent); those already sent are answered as usual. Cancels and lookups go on."""
        self._creates_closed = True
        for request in self._queue.take_creates():
            self._withdraw(request)

    def withdraw_create(self, key: str) -> None:
        """The caller canceled the request of the create for client order id `key` before its ack: a create not
        sent yet never leaves (answered `CANCELED_BEFORE_SENT`); one already sent is answered as usual (its book
        cancels it at the ack). A create held by a Retry-After went out when the hold ended, and a market order
        canceled while it waited was filled."""
        if key not in self.pending_creates:
            return
        self.withdrawing.add(key)  # one at its gate or back for a slot is stopped there (`creates_withdrawn`)
        for request in self._queue.take_creates(key):
            self._withdraw(request, CANCELED_BEFORE_SENT)

    def withdrawn_why(self, key: str) -> str | None:
        """Why the create for `key` must not leave now, if it must not."""
        if self._creates_closed:
            return WITHDRAWN_AT_STOP
        return CANCELED_BEFORE_SENT if key in self.withdrawing else self._held_refusals.get(key)

    def refuse_every_held(self, wait: Wait, now_ms: int) -> None:
        """Every request waits (a long 418 ban, a Retry-After) with a cancel or a lookup at the head of the queue:
        the creates behind it are refused as `refuse_held` would, not sent when the block ends."""
        if wait.until_ms - now_ms <= self._max_create_hold_ms:
            return
        for request, turn, waiter in self._queue.take_every_create():
            if self.refuse_held(request, waiter, wait, now_ms):
                continue
            if waiter is not None:  # a retry back for a slot (no create is retried today): it waits as before
                self._queue.requeue(request, turn, waiter)
            else:
                self._queue.push_front(request)

    def refuse_held(self, request: GatewayRequest, waiter: SlotWait | None, wait: Wait, now_ms: int) -> bool:
        """A create the order limits hold longer than `max_create_hold_ms` (a daily order count reached, a long
        IP ban) is not sent: answered rejected at once, rather than traded hours later on a stale intent. True if
        it was (the caller pops it from the queue); a retry back for a slot (no admission) waits as before."""
        if wait.until_ms - now_ms <= self._max_create_hold_ms or (waiter is not None and waiter.admit is None):
            return False
        until = datetime.fromtimestamp(wait.until_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        why = (
            f"{HELD_PAST_LIMIT} {until} ({wait.reason}), longer than max_create_hold_s "
            f"({self._max_create_hold_ms // 1000} s)"
        )
        if waiter is None:
            self._withdraw(request, why)
        else:  # at its gate (its intent stored): `_call` raises `Withdrawn` with this reason
            self._held_refusals[request.key] = why
            waiter.queued = False
            waiter.granted.set_result(None)
        if wait.until_ms != self._refused_until:  # once per hold: halt new orders until it ends, and alert
            self._refused_until = wait.until_ms
            logger.error("new orders refused until {} ({}): a create would wait {} s", until, wait.reason,
                         (wait.until_ms - now_ms) // 1000)  # fmt: skip
            if self._on_critical is not None:
                self._on_critical(OrderLimitReached(why, until_ms=self._local_ms(wait.until_ms)))
        return True

    def _withdraw(self, request: GatewayRequest, why: str = WITHDRAWN_AT_STOP) -> None:
        logger.bind(op=request.op.value, key=request.key, pair=request.pair).info(why)
        self.pending_creates.done(request.key)
        if request.key not in self.pending_creates:
            self.withdrawing.discard(request.key)
        if request.reply_to is not None:
            request.reply_to(GatewayResult(request, error=withdrawn_error(why)))

    def wake(self) -> None:
        """Check every wait's deadline again now (the clock moved: a manual clock's move calls this by itself)."""
        if self._wake is not None:
            self._wake.set()
        self._pump()

    def _watch_clock(self) -> None:
        """Loop thread, at start: every move of a manual clock wakes the gateway (a system clock needs no telling)."""
        clock, loop = self._clock, self._loop
        if not isinstance(clock, ManualClock) or loop is None:
            return

        def moved() -> None:  # in the thread that moved the clock
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing of this gateway waits any more
                loop.call_soon_threadsafe(self.wake)

        self._unwatch = clock.on_move(moved)

    def _unwatch_clock(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    async def wait_retrying(self, count: int = 1) -> tuple[int, ...]:
        """The deadlines (injected clock, epoch ms, earliest first) of the retries waiting out their backoff, once
        at least `count` wait. A test on a manual clock waits here, then moves the clock past them."""
        assert self._loop is not None
        while len(self._retries) < count:
            waiter = self._loop.create_future()
            self._retry_waiters = [w for w in self._retry_waiters if not w.done()]  # those that gave up
            self._retry_waiters.append(waiter)
            await waiter
        return tuple(sorted(self._retries.values()))

    async def _wait(self, event: asyncio.Event, timeout_s: float | None) -> None:
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return
        finally:
            event.clear()

    async def _back_off(self, request: GatewayRequest, turn: int, delay_s: float) -> Admit | None:  # float-ok: s
        """Wait `delay_s` on the injected clock before a retry, then for a slot and the budget in the queue's order
        (`_take_slot`); the retry's admission, or None if the gateway stops meanwhile.

        The waiting call lends its in-flight slot, as a create parked at its gate does: the cancels and fallbacks
        queued behind it go meanwhile, however long the backoff (or a manual clock standing still) lasts. It
        returns holding a slot either way: the one it was given, or, stopping, one it gives back as it ends.
        """
        assert self._wake is not None
        due = self._clock.now_ms() + math.ceil(delay_s * 1000)
        key = id(asyncio.current_task())
        self._retries[key] = due
        self._in_flight -= 1
        waiters, self._retry_waiters = self._retry_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        admit = None
        try:
            self._pump()
            while self._dispatching and (now := self._clock.now_ms()) < due:
                await self._wait(self._wake, (due - now) / 1000)
            del self._retries[key]  # its backoff is over: from now it waits in the queue, as queued requests do
            admit = await self._take_slot(request, turn, None)
            return admit
        finally:
            self._retries.pop(key, None)
            if admit is None:
                self._in_flight += 1  # not sent again: it holds a slot only to give it back as it ends

    async def _take_slot(self, request: GatewayRequest, turn: int, admit: Admit | None) -> Admit | None:
        """Wait in the queue, at `request`'s priority and first `turn`, for a free slot and the budget's leave (see
        `SlotWait.admit`); the admission, the slot taken, or None (no slot) if the gateway stops first."""
        if not self._dispatching:
            return None
        assert self._loop is not None
        wait = SlotWait(admit, self._loop.create_future())
        self._queue.requeue(request, turn, wait)
        self._slot_waits.add(wait)
        try:
            self._pump()
            return await wait.granted
        except asyncio.CancelledError:
            granted = wait.granted
            if granted.done() and not granted.cancelled() and granted.result() is not None:
                self._in_flight -= 1  # given a slot just as it was canceled: the slot goes to the next
                self._pump()
            raise
        finally:
            self._slot_waits.discard(wait)
            if wait.queued:  # it stopped waiting (a stop, a cancellation): its place goes
                wait.queued = False
                self._queue.discard(wait)

    def _end_slot_waits(self) -> None:
        """Stopping: every request waiting for a slot again hears None (a retry is answered, a create not sent)."""
        for wait in self._slot_waits:
            if not wait.granted.done():
                wait.granted.set_result(None)


def withdrawn_error(why: str = WITHDRAWN_AT_STOP) -> Rejected:
    """The answer to a create withdrawn as the engine stops (`close_creates`), or as its request's caller canceled
    it (`withdraw_create`, `CANCELED_BEFORE_SENT`): definitely not sent."""
    return Rejected(why, operation="create_order")
