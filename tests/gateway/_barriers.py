"""Explicit barriers for the gateway core's tests: each waits for a state it names, not for a number of loop turns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from engine.exchange._ratebudget import Admit, RateBudget, Wait

__all__ = ["GateAsks", "turns_until"]


async def turns_until(done: Callable[[], bool], what: str) -> None:
    """Turn the loop (no time passes, on any clock) until `done()`; fail naming `what` if it never comes."""
    for _ in range(10_000):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


class GateAsks:
    """Counts the budget's answers to requests leaving their write-ahead gate (`RateBudget.sent`), so a test can
    wait until every held request has asked, and then check what was (not) sent."""

    def __init__(self, budget: RateBudget) -> None:
        self.admits = self.waits = 0
        ask = budget.sent

        def sent(admit: Admit, now_ms: int) -> Admit | Wait:
            decision = ask(admit, now_ms)
            if isinstance(decision, Admit):
                self.admits += 1
            else:
                self.waits += 1
            return decision

        budget.sent = sent  # type: ignore[method-assign]

    @property
    def asks(self) -> int:
        """Answers given so far."""
        return self.admits + self.waits
