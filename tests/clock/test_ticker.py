"""The ticker fires timers on the injected clock: manually in tests, on a thread in production."""

from __future__ import annotations

import threading

import pytest

from actors._ticker import Ticker
from engine.clock import ManualClock, SystemClock


def test_manual_advance_fires_in_order_at_their_times() -> None:
    ticker = Ticker(ManualClock(0))
    seen: list[tuple[str, int]] = []
    ticker.call_at(300, lambda now: seen.append(("c", now)))
    ticker.call_later(100, lambda now: seen.append(("a", now)))
    handle = ticker.call_at(200, lambda now: seen.append(("x", now)))
    ticker.call_at(200, lambda now: seen.append(("b", now)))
    assert ticker.cancel(handle)
    assert ticker.advance(250) == 250
    assert seen == [("a", 100), ("b", 200)]
    ticker.advance(50)
    assert seen[-1] == ("c", 300)
    assert ticker.pending() == 0


def test_advance_tells_the_manual_clocks_watchers_at_each_step() -> None:
    # The gateway's waits run on their own event loop, not on timers here: the clock's moves are what wake them.
    clock = ManualClock(0)
    ticker = Ticker(clock)
    moves: list[int] = []

    def moved() -> None:
        moves.append(clock.now_ms())

    clock.on_move(moved)
    ticker.call_at(100, lambda now: None)
    ticker.advance(250)
    assert moves == [100, 250]


def test_timer_scheduled_by_a_timer_fires_within_the_same_advance() -> None:
    ticker = Ticker(ManualClock(0))
    seen: list[int] = []
    ticker.call_at(10, lambda now: ticker.call_later(10, seen.append))
    ticker.advance(100)
    assert seen == [20]


def test_failing_callback_does_not_stop_others() -> None:
    ticker = Ticker(ManualClock(0))
    seen: list[int] = []

    def boom(now: int) -> None:
        raise RuntimeError("bad timer")

    ticker.call_at(1, boom)
    ticker.call_at(1, seen.append)
    ticker.advance(1)
    assert seen == [1]


def test_advance_needs_manual_clock() -> None:
    with pytest.raises(TypeError):
        Ticker(SystemClock()).advance(1)


def test_thread_mode_fires_on_the_system_clock() -> None:
    ticker = Ticker(SystemClock())
    ticker.start()
    fired = threading.Event()
    try:
        ticker.call_later(5, lambda now: fired.set())
        assert fired.wait(5)
    finally:
        ticker.stop()


def test_thread_mode_an_earlier_timer_wakes_the_sleeping_thread() -> None:
    # The thread sleeps until the earliest timer; a later one must not shorten that, an earlier one must.
    ticker = Ticker(SystemClock())
    ticker.start()
    fired = threading.Event()
    late: list[int] = []
    try:
        ticker.call_later(60_000, late.append)
        ticker.call_later(120_000, late.append)
        ticker.call_later(5, lambda now: fired.set())
        assert fired.wait(5)
        assert late == [] and ticker.pending() == 2
    finally:
        ticker.stop()
