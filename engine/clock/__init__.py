"""Injected time: the engine never reads the wall clock directly; tests drive a manual clock by hand."""

from engine.clock._clock import JUMP_AHEAD_MS, SLEW, Clock, ManualClock, SystemClock, WallClock, steady_ms, steady_ns
from engine.clock._timers import TimerQueue

__all__ = [
    "JUMP_AHEAD_MS",
    "SLEW",
    "Clock",
    "ManualClock",
    "SystemClock",
    "TimerQueue",
    "WallClock",
    "steady_ms",
    "steady_ns",
]
