"""Injected time: the engine never reads the wall clock directly; tests drive a manual clock by hand."""

from engine.clock._clock import Clock, ManualClock, SystemClock
from engine.clock._timers import TimerQueue

__all__ = ["Clock", "ManualClock", "SystemClock", "TimerQueue"]
