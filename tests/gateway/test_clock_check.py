"""The clock offset is measured again every minute, not only at start and after a -1021.

Found hands-on: with the exchange's clock moved 8 s after start, the next signed requests all failed -1021 before
one re-sync (the create among them re-sent, the user stream's subscription refused once). Binance's advice is to
keep the offset measured continuously; a step shows in two checks (one far sample is an outlier).
"""

from __future__ import annotations

import asyncio
from typing import Any

from actors.gateway import GatewayCore
from engine.clock import ManualClock
from engine.exchange._ratebudget import RateBudget
from engine.venue import ResponseHook

T0 = 1_700_000_040_000


class _Client:
    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self.options: dict[str, Any] = {}
        self.server_ahead_ms = 20
        self.time_calls = 0

    async def public_get_time(self) -> dict[str, Any]:
        self.time_calls += 1
        return {"serverTime": self._clock.now_ms() + self.server_ahead_ms}

    async def close(self) -> None:
        return None


async def _turns() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def test_the_offset_is_checked_every_minute_and_a_step_taken_within_two_checks() -> None:
    clock = ManualClock(T0)
    client = _Client(clock)
    budget = RateBudget()

    def factory(_hook: ResponseHook) -> _Client:
        return client

    async def run() -> list[tuple[int, int]]:
        core = GatewayCore(factory, clock=clock, wall_clock=clock, budget=budget, clock_check_ms=60_000)
        await core.start()
        seen = [(client.time_calls, core.stats().clock_offset_ms)]
        clock.advance(30_000)
        await _turns()
        seen.append((client.time_calls, core.stats().clock_offset_ms))  # not yet due
        client.server_ahead_ms = 8_020  # the exchange's clock moved 8 s
        for _ in range(2):
            clock.advance(60_000)
            await _turns()
            seen.append((client.time_calls, core.stats().clock_offset_ms))
        # A Retry-After block: no request, not even this one, until it ends.
        budget.on_throttled(http_status=429, retry_after_s=300, now_ms=clock.now_ms() + 8_020)
        clock.advance(120_000)
        await _turns()
        seen.append((client.time_calls, core.stats().clock_offset_ms))
        await core.close()
        return seen

    seen = asyncio.run(run())
    assert seen[0] == (1, 20) and seen[1] == (1, 20)
    assert seen[2] == (2, 20)  # one far sample: an outlier so far
    assert seen[3] == (3, 8_020)  # the second agrees: the clock stepped
    assert seen[4][0] == 3, "checked during a Retry-After block"
