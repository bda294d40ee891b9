"""The ticker: the engine's only source of timers.

Actors ask it to call back at a time; callbacks must be cheap and non-blocking (a pykka ``tell``). In
production a thread waits for the earliest timer on the system clock; in tests the manual clock is advanced by
hand with :meth:`Ticker.advance`, which fires what became due in the caller's thread — no sleeping anywhere. Each
step of the manual clock also tells its watchers (`ManualClock.on_move`): the gateway's waits, which run on its own
event loop rather than on timers here, check their deadlines again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from loguru import logger

from engine.clock import Clock, ManualClock, TimerQueue

__all__ = ["Ticker"]

TimerCallback = Callable[[int], None]
_AWAKE = -1
"""`_waiting_until` while the timer thread is not waiting (it re-reads the queue before it sleeps)."""


class Ticker:
    """Thread-safe timer service over an injected clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._manual = isinstance(clock, ManualClock)
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
        """Call `callback(now_ms)` at `due_ms` (epoch ms on the injected clock); returns a handle."""
        with self._cond:
            handle = self._timers.add(due_ms, callback)
            # Wake the thread only when this timer is due before the one it sleeps until: most timers
            # (order deadlines, lookups) are later than one already armed, and a wake-up is a context switch.
            until = self._waiting_until
            if until != _AWAKE and (until is None or due_ms < until):
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

    def _fire(self, now_ms: int) -> int:
        with self._cond:
            due = self._timers.pop_due(now_ms)
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
                now = self.clock.now_ms()
                if nxt is None or nxt > now:
                    # A cancelled timer stays armed here: waking at its time to find nothing due is cheaper
                    # than a wake-up per cancel.
                    self._waiting_until = nxt
                    try:
                        self._cond.wait(None if nxt is None else (nxt - now) / 1000)
                    finally:
                        self._waiting_until = _AWAKE
                    continue
            self._fire(now)
