"""What the daemon says when it stops: the summary line, and a WARNING when the orders it leaves open end with
a simulated exchange it started itself.

The daemon passes the simulator it starts (the embedded one, or dry run's paper exchange on a real venue) to
`Engine.start(sim=...)`, so the engine does not own it and does not warn: the daemon does, since both live only in
its process and the orders kept there (`execution.on_shutdown = "keep"`) are gone at the next start.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ended_with_simulator", "stop_line"]

_STOP_WORDS = (("canceled", "canceled"), ("open", "left open"), ("outcome_unknown", "outcome unknown"),
               ("ended_otherwise", "ended otherwise"),
               ("withdrawn", "requests withdrawn"), ("unanswered", "pairs that did not answer"),
               ("ended_with_simulator", "ended with the simulator"))  # fmt: skip


def ended_with_simulator(summary: Mapping[str, int], *, on_shutdown: str, own_simulator: bool) -> Mapping[str, int]:
    """`Engine.stop`'s summary, with `ended_with_simulator` (the orders left open) added when open orders were kept
    on a simulated exchange the daemon started itself: they end with it. A WARNING says so when there are any."""
    if on_shutdown != "keep" or not own_simulator:
        return summary
    from loguru import logger

    kept = summary.get("open", 0) + summary.get("outcome_unknown", 0)  # whatever of those exists ends too
    if kept:
        logger.warning("daemon stop: {} open order(s) kept (execution.on_shutdown = keep), but the simulated exchange "
                       "this daemon started stops with it and its orders end with it: nothing is kept for the next "
                       "start, which finds them gone", kept)  # fmt: skip
    return {**summary, "ended_with_simulator": kept}


def stop_line(summary: Mapping[str, int], on_shutdown: str) -> str:
    """The line the daemon prints once stopped: `canceled` and `left open` always, the other counts when there."""
    counts = {"canceled": 0, "open": 0, **summary}
    said = ", ".join(f"{words}={counts[key]}" for key, words in _STOP_WORDS if key in counts)
    return f"shutdown complete: on_shutdown={on_shutdown}, {said}"
