"""Manual clock and timer queue: timers fire in due order, cancelled ones never."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.clock import ManualClock, TimerQueue


def test_manual_clock_moves_only_forward() -> None:
    clock = ManualClock(1000)
    assert clock.advance(500) == 1500
    clock.set(2000)
    assert clock.now_ms() == 2000
    assert clock.now().timestamp() == 2.0
    with pytest.raises(ValueError, match="does not go backwards"):
        clock.set(1999)
    with pytest.raises(ValueError, match="does not go backwards"):
        clock.advance(-1)


def test_manual_clock_tells_its_watchers_of_every_move_until_they_stop() -> None:
    clock = ManualClock(1000)
    seen: list[int] = []

    def moved() -> None:
        seen.append(clock.now_ms())  # told after the move: it reads the new time

    stop = clock.on_move(moved)
    clock.advance(0)
    clock.set(1000)
    assert seen == []  # not moved, nothing to tell
    clock.advance(5)
    clock.set(2000)
    assert seen == [1005, 2000]
    stop()
    clock.advance(1)
    assert seen == [1005, 2000]


@given(
    dues=st.lists(st.integers(min_value=0, max_value=10_000), max_size=50),
    cancel_mask=st.lists(st.booleans(), max_size=50),
    now=st.integers(min_value=0, max_value=10_000),
)
def test_timer_queue_fires_due_in_order(dues: list[int], cancel_mask: list[bool], now: int) -> None:
    queue = TimerQueue()
    fired: list[tuple[int, int]] = []
    handles = [queue.add(due, lambda t, i=i, due=due: fired.append((due, i))) for i, due in enumerate(dues)]
    cancelled = {i for i, (h, c) in enumerate(zip(handles, cancel_mask, strict=False)) if c and queue.cancel(h)}
    for callback in queue.pop_due(now):
        callback(now)
    expected = sorted((due, i) for i, due in enumerate(dues) if due <= now and i not in cancelled)
    assert fired == expected
    remaining = [d for i, d in enumerate(dues) if d > now and i not in cancelled]
    assert len(queue) == len(remaining)
    assert queue.next_due_ms() == (min(remaining) if remaining else None)
