"""The gateway's waits, every one on the injected clock: a request held back by the rate budget, one held at its
write-ahead gate, and an idempotent call waiting out its retry backoff.

Each waits on `_wake` until the injected clock reaches its deadline, with a real timer of the time left as a
bound. With the system clock that timer is the wait: a retry waits its delay, once, with no polling. A manual
clock moves only when told to, and no real time has to pass for it: each move wakes the gateway
(`ManualClock.on_move`, which the ticker's `advance` moves too), and every wait checks its deadline again; the
real timer then only re-checks, so a retry never goes out before the clock passes its deadline, however much real
time passes.

`close()` turns dispatching off and sets `_wake`: every wait ends at once, and a retry is answered with its last
failure instead of going out again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.clock import ManualClock
from engine.exchange._ratebudget import Admit
from engine.gateway import OP_SPECS
from engine.venue import NotSent

if TYPE_CHECKING:
    from engine.clock import Clock
    from engine.exchange._ratebudget import RateBudget
    from engine.gateway import GatewayRequest

__all__ = ["ClockWaits"]


class ClockWaits:
    """Under `ExchangeFeedback` and `GatewayCore`: their waits on the injected clock (see module docstring)."""

    budget: RateBudget
    _clock: Clock
    _loop: asyncio.AbstractEventLoop | None
    _dispatching: bool
    _in_flight: int
    _server_now: Callable[[], int]
    _pump: Callable[[], None]

    def __init__(self) -> None:
        self._wake: asyncio.Event | None = None  # set by `wake()`: every wait checks its deadline again
        self._retries: dict[int, int] = {}
        """Retries waiting out their backoff: the deadline (injected clock, epoch ms) by the id of the call's task."""
        self._retry_waiters: list[asyncio.Future[None]] = []  # `wait_retrying` callers, woken as a retry waits
        self._unwatch: Callable[[], None] | None = None

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

    async def _back_off(self, delay_s: float) -> bool:  # float-ok: seconds
        """Wait `delay_s` on the injected clock before a retry; False if the gateway stops meanwhile.

        The waiting call lends its in-flight slot, as a create parked at its gate does: the cancels and fallbacks
        queued behind it go meanwhile, however long the backoff (or a manual clock standing still) lasts.
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
        try:
            self._pump()
            while self._dispatching:
                now = self._clock.now_ms()
                if now >= due:
                    return True
                await self._wait(self._wake, (due - now) / 1000)
            return False
        finally:
            del self._retries[key]
            self._in_flight += 1  # back in flight, even past the cap for a moment: its time came

    async def _admit(self, request: GatewayRequest) -> Admit | None:
        """A retry's turn with the budget: its admission, or None if the gateway stops meanwhile."""
        assert self._wake is not None
        while self._dispatching:
            now = self._server_now()
            decision = self.budget.reserve(OP_SPECS[request.op].endpoint, now, weight=request.weight)
            if isinstance(decision, Admit):
                return decision
            await self._wait(self._wake, max(0.001, (decision.until_ms - now) / 1000))
        return None

    async def _cleared(self, admit: Admit, waiting: Callable[[], None]) -> Admit:
        """Held at its gate (its commit), a request leaves only as the budget allows now: a Retry-After, a ban or
        a -1015 hold may have begun meanwhile, or its order window passed; never once the gateway stops."""
        assert self._wake is not None
        while self._dispatching:
            now = self._server_now()
            decision = self.budget.sent(admit, now)
            if isinstance(decision, Admit):
                return decision
            waiting()
            await self._wait(self._wake, max(0.001, (decision.until_ms - now) / 1000))
        raise NotSent("the gateway is stopping: held at its gate, it does not leave")
