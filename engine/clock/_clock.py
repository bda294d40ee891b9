"""Clocks: the system clock for production, a manual one for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """The only source of time in the engine (epoch milliseconds, UTC)."""

    def now_ms(self) -> int:
        """Current time in epoch milliseconds."""
        ...

    def now(self) -> datetime:
        """Current time as an aware UTC datetime."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now_ms(self) -> int:
        """Current time in epoch milliseconds."""
        return time.time_ns() // 1_000_000

    def now(self) -> datetime:
        """Current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now_ms() / 1000, tz=UTC)


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
