"""A pure timer queue: what is due when. The ticker (actors/) owns one and fires what is due."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["TimerQueue"]


@dataclass(order=True)
class _Entry:
    due_ms: int
    seq: int
    callback: Callable[[int], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


def _cancelled(_now_ms: int) -> None:
    """The callback of a cancelled timer (never called)."""


class TimerQueue:
    """Timers ordered by due time, FIFO among equal times. Not thread-safe: one owner."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._by_id: dict[int, _Entry] = {}
        self._seq = itertools.count()

    def add(self, due_ms: int, callback: Callable[[int], None]) -> int:
        """Schedule `callback(now_ms)` at `due_ms`; returns a handle for `cancel`."""
        entry = _Entry(due_ms, next(self._seq), callback)
        heapq.heappush(self._heap, entry)
        self._by_id[entry.seq] = entry
        return entry.seq

    def cancel(self, handle: int) -> bool:
        """Cancel a pending timer; False if it already fired or was cancelled."""
        entry = self._by_id.pop(handle, None)
        if entry is None:
            return False
        entry.cancelled = True
        entry.callback = _cancelled  # what it held (an actor's proxy, a request) is not kept until its due time
        # A limit that fills early cancels its timeout: with a day's timeout, a day of cancelled entries piled up
        # (600 entries for 7 live timers). Rebuilt once they outnumber the live ones, at an amortized O(1) a cancel.
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._by_id):
            self._heap = [e for e in self._heap if not e.cancelled]
            heapq.heapify(self._heap)
        return True

    def next_due_ms(self) -> int | None:
        """When the earliest pending timer is due, or None."""
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].due_ms if self._heap else None

    def pop_due(self, now_ms: int) -> list[Callable[[int], None]]:
        """Remove and return the callbacks due at `now_ms`, in due order."""
        out = []
        while self._heap and (self._heap[0].cancelled or self._heap[0].due_ms <= now_ms):
            entry = heapq.heappop(self._heap)
            if entry.cancelled:
                continue
            self._by_id.pop(entry.seq, None)
            out.append(entry.callback)
        return out

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def held(self) -> int:
        """Entries held, the cancelled ones not yet dropped included (at most about twice the live ones)."""
        return len(self._heap)
