"""The system-clock ticker measures elapsed time on a steady clock: a wall-clock step neither fires a timer early
(a limit's timeout, then its market fallback, an hour too soon) nor holds it back, and suspended time counts."""

from __future__ import annotations

import threading
import time

from actors._ticker import Ticker
from engine.clock import steady_ms

HOUR_MS = 3_600_000


class SteppedClock:
    """The system clock plus an offset a test steps, as NTP or an operator would."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def now(self):  # type: ignore[no-untyped-def]  # the Clock protocol; not used here
        raise NotImplementedError


class Suspendable:
    """A steady clock a test moves forward, as a suspend moves CLOCK_BOOTTIME (a thread's wait does not see it)."""

    def __init__(self) -> None:
        self.extra_ms = 0
        self.armed = threading.Event()
        """Set when the ticker's thread reads this clock with a timer pending (just before it sleeps)."""
        self.ticker: Ticker | None = None

    def __call__(self) -> int:
        if threading.current_thread().name == "ticker" and self.ticker is not None and self.ticker.pending():
            self.armed.set()
        return steady_ms() + self.extra_ms


def _fires(ticker: Ticker, delay_ms: int) -> threading.Event:
    event = threading.Event()
    ticker.call_later(delay_ms, lambda _now: event.set())
    return event


def test_a_forward_step_does_not_fire_a_timer_early() -> None:
    wall = SteppedClock()
    ticker = Ticker(wall)
    ticker.start()
    early: list[int] = []
    try:
        ticker.call_at(wall.now_ms() + HOUR_MS, early.append)  # a limit's one-hour timeout
        soon = _fires(ticker, 50)
        wall.offset_ms += HOUR_MS  # the wall clock jumps an hour ahead while the ticker sleeps
        assert soon.wait(5)
        # Timers fire one after another on the ticker's thread: once a later one has fired, any that were due
        # with `soon` have fired too.
        assert _fires(ticker, 1).wait(5)
        assert early == []
        assert ticker.pending() == 1
    finally:
        ticker.stop()


def test_a_backward_step_does_not_hold_a_timer_back_and_callbacks_see_the_wall_time() -> None:
    wall = SteppedClock()
    ticker = Ticker(wall)
    ticker.start()
    seen: list[int] = []
    fired = threading.Event()

    def record(now: int) -> None:
        seen.append(now)
        fired.set()

    try:
        ticker.call_later(100, record)
        wall.offset_ms -= HOUR_MS
        assert fired.wait(5)  # before the fix: an hour later
        assert seen[0] < time.time_ns() // 1_000_000 - HOUR_MS + 60_000  # the stepped wall clock's time
    finally:
        ticker.stop()


def test_time_spent_suspended_counts() -> None:
    # A one-hour timeout armed before the host slept for an hour is due when it wakes, though no thread's wait saw
    # the hour pass: the ticker looks at the steady clock at least once a second.
    wall, steady = SteppedClock(), Suspendable()
    ticker = Ticker(wall, steady=steady)
    steady.ticker = ticker
    ticker.start()
    try:
        fired = _fires(ticker, HOUR_MS)
        assert steady.armed.wait(5)  # the thread has seen the timer and goes to sleep for (up to) its hour
        steady.extra_ms += HOUR_MS
        wall.offset_ms += HOUR_MS
        assert fired.wait(5)
    finally:
        ticker.stop()


def test_an_idle_ticker_still_wakes_for_a_new_timer() -> None:
    ticker = Ticker(SteppedClock())
    ticker.start()
    try:
        assert _fires(ticker, 5).wait(5)
        assert _fires(ticker, 5).wait(5)
        assert ticker.pending() == 0
    finally:
        ticker.stop()


def test_on_the_engines_clock_the_ticker_counts_time_on_that_clocks_own_steady_clock() -> None:
    # One steady clock for both: the engine's clock advances on it and the ticker's deadlines are kept on it.
    from engine.clock import SystemClock

    host = {"wall": time.time_ns(), "steady": 0}
    clock = SystemClock(wall_ns=lambda: host["wall"], steady=lambda: host["steady"])
    ticker = Ticker(clock)
    ticker.start()
    try:
        fired = _fires(ticker, 60_000)
        assert not fired.wait(1.5)  # real time passes; this host's steady clock does not
        host["steady"] += 60_000 * 1_000_000
        host["wall"] += 60_000 * 1_000_000
        assert fired.wait(5)  # seen within the thread's one-second look
    finally:
        ticker.stop()
