"""Clocks: the system clock for production, a manual one for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["JUMP_AHEAD_MS", "SLEW", "Clock", "ManualClock", "SystemClock", "WallClock", "steady_ms", "steady_ns"]


@runtime_checkable
class Clock(Protocol):
    """The only source of time in the engine (epoch milliseconds, UTC)."""

    def now_ms(self) -> int:
        """Current time in epoch milliseconds."""
        ...

    def now(self) -> datetime:
        """Current time as an aware UTC datetime."""
        ...


def steady_ns() -> int:
    """Nanoseconds on a clock that wall-clock steps do not move, suspended time included (Linux: CLOCK_BOOTTIME)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        return time.clock_gettime_ns(boottime)
    return time.monotonic_ns()


def steady_ms() -> int:
    """`steady_ns` in milliseconds."""
    return steady_ns() // 1_000_000


class WallClock:
    """The host's wall clock as it is, steps included: for what is compared with another host's clock (the
    exchange's signature window, a CLI's signed request), never for durations."""

    def now_ms(self) -> int:
        """Current wall-clock time in epoch milliseconds."""
        return time.time_ns() // 1_000_000

    def now(self) -> datetime:
        """Current wall-clock time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now_ms() / 1000, tz=UTC)


SLEW = 20
"""A wall-clock step is caught up at 1/SLEW of the time that passes (5 %): a minute's limit timeout then lasts
57–63 s, and a step of a second is absorbed in 20 s."""
JUMP_AHEAD_MS = 600_000
"""A wall clock this far ahead is followed at once: time passed that the steady clock did not count (a VM paused or
restored, a suspend it missed), or a clock badly wrong; catching it up at 5 % would take days, with every record
stamped hours late."""


class SystemClock:
    """The engine's clock: epoch time that follows the wall clock but does not step with it.

    It advances with a steady clock (`steady_ns`) and follows the wall clock's slow corrections. When the wall clock
    steps (an NTP step, an operator setting the date), this clock does not jump: it runs 5 % faster or slower until
    it meets the wall clock again; only a wall clock more than `JUMP_AHEAD_MS` ahead is followed at once (real time
    the steady clock did not count, as a VM paused or restored). So it never goes backwards, and a duration measured
    on it — a limit's timeout, the grace before an unknown create is sent again, a stream's silence — is real time
    within 5 %: a step forward does not fire a market fallback early or re-send a create whose first try may still
    show up, a step back does not freeze a watchdog. Record times are this clock's, so after a step they are off the
    wall clock by what is left to catch up (`wall_gap_ms`). What is compared with another host's clock uses
    `WallClock`; an estimate of the exchange's clock is kept on `steady_ms`.
    """

    def __init__(self, wall_ns: Callable[[], int] = time.time_ns, steady: Callable[[], int] = steady_ns) -> None:
        """`wall_ns`/`steady`: the two clocks read (nanoseconds), injected by tests."""
        self._lock = threading.Lock()
        self._wall_ns, self._steady_ns = wall_ns, steady
        self._steady_at = steady()
        self._now_ns = wall_ns()

    def _read(self) -> tuple[int, int]:
        """(this clock, wall clock) in ns, moving this clock to now."""
        with self._lock:
            steady, wall = self._steady_ns(), self._wall_ns()
            passed = max(0, steady - self._steady_at)
            now = self._now_ns + passed
            most = passed // SLEW
            if wall - now > JUMP_AHEAD_MS * 1_000_000:
                now = wall
            else:
                now += max(-most, min(most, wall - now))  # toward the wall clock, at most 5 % of what passed
            self._now_ns, self._steady_at = now, steady
            return now, wall

    def now_ms(self) -> int:
        """Current time in epoch milliseconds (never less than before)."""
        return self._read()[0] // 1_000_000

    def now(self) -> datetime:
        """Current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now_ms() / 1000, tz=UTC)

    def steady_ms(self) -> int:
        """The steady clock this one advances on, in ms: no steps, never faster or slower (what an estimate of
        another clock is kept on)."""
        return self._steady_ns() // 1_000_000

    def wall_gap_ms(self) -> int:
        """Wall clock minus this clock, in ms: what is left of a step to catch up (0 when none)."""
        now, wall = self._read()
        return (wall - now) // 1_000_000


class ManualClock:
    """A clock that only moves when told to; thread-safe.

    It tells its watchers (`on_move`) after every move: what waits for a time on this clock cannot rely on a real
    timer, as no real time has to pass for the clock to get there.
    """

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self._lock = threading.Lock()
        self._now_ms = start_ms
        self._watchers: tuple[Callable[[], None], ...] = ()

    def now_ms(self) -> int:
        """Current (manual) time in epoch milliseconds."""
        with self._lock:
            return self._now_ms

    def now(self) -> datetime:
        """Current (manual) time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now_ms() / 1000, tz=UTC)

    def advance(self, ms: int) -> int:
        """Move forward by `ms` (never backwards) and return the new time."""
        if ms < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now_ms += ms
            now, watchers = self._now_ms, self._watchers
        if ms:
            _tell(watchers)
        return now

    def set(self, now_ms: int) -> None:
        """Jump to `now_ms` (not earlier than the current time)."""
        with self._lock:
            if now_ms < self._now_ms:
                raise ValueError("a clock does not go backwards")
            moved, self._now_ms, watchers = now_ms > self._now_ms, now_ms, self._watchers
        if moved:
            _tell(watchers)

    def on_move(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` after every move from now on, in the thread that moved the clock; returns the function
        that stops it. The callback must be cheap, non-blocking and must not raise (a hand-over to another thread)."""
        with self._lock:
            self._watchers = (*self._watchers, callback)

        def stop() -> None:
            with self._lock:
                self._watchers = tuple(w for w in self._watchers if w is not callback)

        return stop


def _tell(watchers: tuple[Callable[[], None], ...]) -> None:
    # Outside the lock: a watcher may read the clock.
    for watcher in watchers:
        watcher()
