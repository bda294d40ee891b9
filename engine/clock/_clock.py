"""Clocks: the system clock for production, a manual one for tests."""

from __future__ import annotations

import threading
import time
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
    """A clock that only moves when told to; thread-safe."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self._lock = threading.Lock()
        self._now_ms = start_ms

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
            return self._now_ms

    def set(self, now_ms: int) -> None:
        """Jump to `now_ms` (not earlier than the current time)."""
        with self._lock:
            if now_ms < self._now_ms:
                raise ValueError("a clock does not go backwards")
            self._now_ms = now_ms
