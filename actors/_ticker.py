"""The ticker: the engine's only source of timers.

Actors ask it to call back at a time; callbacks must be cheap and non-blocking (a pykka ``tell``). In
production a thread waits for the earliest timer on the system clock; in tests the manual clock is advanced by
hand with :meth:`Ticker.advance`, which fires what became due in the caller's thread — no sleeping anywhere. Each
step of the manual clock also tells its watchers (`ManualClock.on_move`): the gateway's waits, which run on its own
event loop rather than on timers here, check their deadlines again.

On the system clock a timer is due after the time it asked for has *passed*, not when the wall clock shows its time:
the due time is turned into a steady deadline when the timer is set, so a wall-clock step (an NTP step, an operator
fixing the date) neither fires a limit's timeout early — a market fallback sent an hour too soon — nor holds it back.
The steady clock counts time spent suspended (CLOCK_BOOTTIME where there is one), as the exchange does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from loguru import logger

from engine.clock import Clock, ManualClock, SystemClock, TimerQueue, steady_ms

__all__ = ["Ticker"]

TimerCallback = Callable[[int], None]
_AWAKE = -1
"""`_waiting_until` while the timer thread is not waiting (it re-reads the queue before it sleeps)."""
_MAX_SLEEP_S = 1.0
"""The longest the timer thread sleeps at once: a thread's wait does not count time spent suspended, the steady
clock does, so the thread looks again at least this often (one wake-up a second, on a thread of its own)."""


class Ticker:
    """Thread-safe timer service over an injected clock."""

    def __init__(self, clock: Clock, steady: Callable[[], int] | None = None) -> None:
        """`steady`: what the system-clock thread measures elapsed time with (injected by tests); by default the
        steady clock under a `SystemClock` (the one the engine's clock advances on), else `steady_ms`."""
        self.clock = clock
        self._manual = isinstance(clock, ManualClock)
        if self._manual:
            self._steady: Callable[[], int] = clock.now_ms
        else:
            self._steady = steady or (clock.steady_ms if isinstance(clock, SystemClock) else steady_ms)
        self._timers = TimerQueue()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._waiting_until: int | None = _AWAKE
        """What the timer thread sleeps until: None = no timer (indefinitely), `_AWAKE` = not asleep."""

    def start(self) -> None:
        """Start the timer thread (not needed, and not started, with a manual clock)."""
        if self._manual or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop firing timers and join the thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)

    def call_at(self, due_ms: int, callback: TimerCallback) -> int:
        """Call `callback(now_ms)` at `due_ms` (epoch ms on the injected clock): on the system clock, once as much
        time has passed as `due_ms` was ahead of the clock when this was called; returns a handle."""
        # A manual clock is its own steady clock (tests step it on purpose); on the system clock the timer is kept by
        # when it is due on the steady clock.
        at = due_ms if self._manual else self._steady() + (due_ms - self.clock.now_ms())
        with self._cond:
            handle = self._timers.add(at, callback)
            # Wake the thread only when this timer is due before the one it sleeps until: most timers
            # (order deadlines, lookups) are later than one already armed, and a wake-up is a context switch.
            until = self._waiting_until
            if until != _AWAKE and (until is None or at < until):
                self._cond.notify_all()
        return handle

    def call_later(self, delay_ms: int, callback: TimerCallback) -> int:
        """Call `callback(now_ms)` after `delay_ms`; returns a handle."""
        return self.call_at(self.clock.now_ms() + max(0, delay_ms), callback)

    def cancel(self, handle: int) -> bool:
        """Cancel a timer; False if it already fired."""
        with self._cond:
            return self._timers.cancel(handle)

    def pending(self) -> int:
        """Timers not yet fired."""
        with self._cond:
            return len(self._timers)

    def advance(self, ms: int) -> int:
        """Manual clock only: move time forward by `ms`, firing every timer that becomes due, in order."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance() needs a ManualClock")
        target = self.clock.now_ms() + ms
        while True:
            with self._cond:
                nxt = self._timers.next_due_ms()
            if nxt is None or nxt > target:
                break
            # Step to each due time so callbacks see the time they were scheduled for.
            if nxt > self.clock.now_ms():
                self.clock.set(nxt)
            self._fire(self.clock.now_ms())
        if target > self.clock.now_ms():
            self.clock.set(target)
        return self.clock.now_ms()

    def _fire(self, steady_now: int) -> int:
        with self._cond:
            due = self._timers.pop_due(steady_now)
        now_ms = steady_now if self._manual else self.clock.now_ms()  # callbacks see the injected clock's time
        for callback in due:
            try:
                callback(now_ms)
            except Exception:  # noqa: BLE001 - one bad timer must not stop the others
                logger.exception("timer callback failed")
        return len(due)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                nxt = self._timers.next_due_ms()
                now = self._steady()
                if nxt is None or nxt > now:
                    # A cancelled timer stays armed here: waking at its time to find nothing due is cheaper
                    # than a wake-up per cancel.
                    self._waiting_until = nxt
                    try:
                        self._cond.wait(_MAX_SLEEP_S if nxt is None else min(_MAX_SLEEP_S, (nxt - now) / 1000))
                    finally:
                        self._waiting_until = _AWAKE
                    continue
            self._fire(now)
