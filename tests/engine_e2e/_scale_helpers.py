"""Shared by the tests that prove what reached the simulator: its request log read from a mark on, and a barrier
that lets the engine act on a manual clock's move without moving it further (`settle` moves it to a retry's time).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.api import Engine
from sim import Simulator

__all__ = ["barrier", "requests_since", "step"]


def requests_since(sim: Simulator, mark: int) -> list[tuple[str, str]]:
    """(method, path) of every request the simulator received after the first `mark` ones (needs
    `SimConfig(record_requests=True)`)."""
    return [(str(r["method"]), str(r["path"])) for r in sim.control.requests()[mark:]]


def barrier(engine: Engine) -> None:
    """What the last clock move set off has been handed on: the root handled its timers' messages (reconciliation,
    the wallet read), every pair actor handled what it was told, persistence committed (a create's write-ahead
    lets it into the gateway), and the gateway took in everything submitted before. The clock is not moved."""
    root = engine._root.proxy()
    root.pair_refs().get(timeout=10)
    for proxy in engine._routing.routes.values():
        proxy.active_requests().get(timeout=10)
    root.store().get(timeout=10).flush().get(timeout=10)
    root.pair_refs().get(timeout=10)  # what the pair actors told the root meanwhile
    root.gateway.get(timeout=10).stats()  # runs on the gateway's loop after the submits queued before it


def step(engine: Engine, total_ms: int, step_ms: int = 1_000, each: Callable[[], None] | None = None) -> None:
    """Move the engine's manual clock on by `total_ms` in `step_ms` steps, with a `barrier` (and `each`) after each."""
    moved = 0
    while moved < total_ms:
        delta = min(step_ms, total_ms - moved)
        engine.ticker.advance(delta)
        moved += delta
        barrier(engine)
        if each is not None:
            each()
