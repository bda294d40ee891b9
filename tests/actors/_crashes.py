"""Crashing pair actors for the supervision tests: the real crash path (`on_failure` → `child_failed`)."""

from __future__ import annotations

from engine.api import Engine
from engine.domain import Pair

__all__ = ["exhaust_restart_budget"]


def exhaust_restart_budget(engine: Engine, pair: Pair | str, budget: int = 3) -> None:
    """Crash `pair`'s actor until the root halts (`budget` restarts, then one more crash)."""

    def exhausted() -> bool:
        # By its reason: another cause (a full spool) may have halted the engine already.
        return "restart budget exhausted" in engine._state.intake().halt_reason

    for _ in range(budget + 1):
        old = engine._routing.get(Pair(pair))
        old.crash.defer()
        for _ in range(10_000):  # each round is a barrier through the root's inbox, not a sleep
            engine._root.proxy().pair_refs().get(timeout=10)
            if engine._routing.get(Pair(pair)) is not old or exhausted():
                break
    assert exhausted() and engine.halted, "the restart budget was not exhausted"
    assert not engine._routing.get(Pair(pair)).actor_ref.is_alive()
