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
    dues=st.lists(st.integers(min_value=0, max_value=10_000), max_size=200),  # past 64: cancels compact the heap
    cancel_mask=st.lists(st.booleans(), max_size=200),
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


def test_cancelled_timers_do_not_pile_up_until_their_due_time() -> None:
    # Limits that fill early cancel their day-long timeouts: each entry (with what its callback held) stayed a day.
    queue = TimerQueue()
    fired: list[int] = []
    handles = [queue.add(86_400_000 + i, fired.append) for i in range(1_000)]
    for handle in handles[:990]:
        assert queue.cancel(handle)
    assert len(queue) == 10 and queue.held <= 2 * 10 + 64
    for callback in queue.pop_due(86_400_000 + 1_000):
        callback(0)
    assert len(fired) == 10 and queue.held == 0
