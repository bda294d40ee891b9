"""A host clock stepped back during a Retry-After block does not lengthen the block: the gateway times the rate
windows on the engine's clock, which does not step (`SystemClock`), and signs with the wall clock's offset.

Found by a time review: with the wall clock driving the windows, a step back of an hour during a 60 s block kept
every request, cancels included, waiting for the hour (the offset is not measured again during a block)."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.gateway import GatewayCore
from engine.clock import SLEW, SystemClock
from engine.exchange._ratebudget import RateBudget
from engine.venue import ResponseHook

MS = 1_000_000
HOUR_MS = 3_600_000


class _Host:
    """Real time (the exchange's clock), the host's wall clock (it steps) and its steady clock, in ns."""

    def __init__(self) -> None:
        self.true = 1_767_225_600_000 * MS
        self.wall = self.true
        self.steady = 0

    def run(self, ms: int) -> None:
        self.true, self.wall, self.steady = self.true + ms * MS, self.wall + ms * MS, self.steady + ms * MS


class _Wall:
    def __init__(self, host: _Host) -> None:
        self._host = host

    def now_ms(self) -> int:
        return self._host.wall // MS

    def now(self) -> Any:
        raise NotImplementedError


class _Client:
    def __init__(self, host: _Host) -> None:
        self._host = host
        self.options: dict[str, Any] = {}

    async def public_get_time(self) -> dict[str, Any]:
        return {"serverTime": self._host.true // MS}

    async def close(self) -> None:
        return None


def test_a_step_back_during_a_retry_after_block_does_not_lengthen_it() -> None:
    host = _Host()
    clock = SystemClock(wall_ns=lambda: host.wall, steady=lambda: host.steady)
    budget = RateBudget()
    client = _Client(host)

    def factory(_hook: ResponseHook) -> _Client:
        return client

    async def run() -> tuple[int, int, int, int]:
        core = GatewayCore(factory, clock=clock, wall_clock=_Wall(host), budget=budget, clock_check_ms=0)
        await core.start()
        budget.on_throttled(http_status=429, retry_after_s=60, now_ms=core._server_now())
        host.wall -= HOUR_MS * MS  # NTP steps the host clock back an hour; the exchange's does not move
        host.run(60_000 * SLEW // (SLEW - 1) + 10)  # the block's minute, stretched by at most the catch-up rate
        left = budget.blocked_until_ms() - core._server_now()
        shown = core.stats().blocked_for_ms
        await core.sync_time()  # the next check (twice: one far sample is an outlier)
        await core.sync_time()
        error = core._server_now() - host.true // MS
        signing = client.options["timeDifference"]
        await core.close()
        return left, error, signing, shown

    left, error, signing, shown = asyncio.run(run())
    assert left <= 0, f"still blocked {left} ms after the exchange's 60 s Retry-After ended"
    assert shown == 0
    assert abs(error) <= 1  # once measured again, the windows' idea of the exchange's time is exact again
    assert signing == -HOUR_MS  # ccxt signs with the wall clock: its offset is the step
