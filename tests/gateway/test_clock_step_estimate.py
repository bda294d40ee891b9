"""The gateway's estimate of the exchange's clock after a wall-clock step: kept on the steady clock, so it is
neither off by the step after the first check (a -1015 hold taken then lasted an hour) nor drifting 5 % while the
engine's clock catches the step up (Retry-Afters and 418 bans ended early: requests during a ban). Found by a review
of the engine clock's change; each failed on it."""

from __future__ import annotations

import asyncio

from actors.gateway import GatewayCore
from engine.clock import SystemClock
from engine.exchange._ratebudget import ORDER_WINDOW_GUARD_MS, EndpointKind, RateBudget, Wait
from engine.venue import ResponseHook
from tests.gateway.test_clock_step_block import HOUR_MS, MS, _Client, _Host, _Wall


def _core(host: _Host, budget: RateBudget) -> tuple[GatewayCore, SystemClock, _Client]:
    clock = SystemClock(wall_ns=lambda: host.wall, steady=lambda: host.steady)
    client = _Client(host)

    def factory(_hook: ResponseHook) -> _Client:
        return client

    return GatewayCore(factory, clock=clock, wall_clock=_Wall(host), budget=budget, clock_check_ms=0), clock, client


def test_one_check_after_a_step_leaves_the_estimate_right() -> None:
    """One periodic clock check after an NTP step: the estimator keeps the far sample aside (offset unchanged) but
    the step's gap is added at once."""
    host = _Host()
    budget = RateBudget()

    async def run() -> list[int]:
        core, _clock, _client = _core(host, budget)
        await core.start()
        errors = [core._server_now() - host.true // MS]
        host.wall += HOUR_MS * MS  # NTP steps the host clock an hour forward
        host.run(5_000)
        errors.append(core._server_now() - host.true // MS)
        await core.sync_time()  # the next periodic check (one far sample: kept aside as a possible outlier)
        errors.append(core._server_now() - host.true // MS)
        await core.close()
        return errors

    before, after_step, after_one_sync = asyncio.run(run())
    assert abs(before) <= 1
    assert abs(after_step) <= 300  # fine until the check: the engine clock did not step
    assert abs(after_one_sync) <= 1_000, f"exchange time estimate off by {after_one_sync} ms after one check"


def test_a_10s_order_hold_taken_right_after_a_step_lasts_10s() -> None:
    """A -1015 (10 s window) answered between the two checks that confirm the step holds creates for an hour."""
    host = _Host()
    budget = RateBudget()

    async def run() -> int:
        core, _clock, _client = _core(host, budget)
        await core.start()
        host.wall += HOUR_MS * MS
        host.run(5_000)
        await core.sync_time()  # first check after the step
        now = core._server_now()
        budget.on_throttled(http_status=429, retry_after_s=None, now_ms=now, orders_only=True, window_ms=10_000,
                            sent_ms=now - 20)  # fmt: skip
        host.run(60_000)
        await core.sync_time()  # the next minute's check confirms the step (not skipped: only creates are held)
        host.run(1_000)
        wait = budget.reserve(EndpointKind.CREATE_ORDER, core._server_now())
        await core.close()
        return wait.until_ms - core._server_now() if isinstance(wait, Wait) else 0

    held_ms = asyncio.run(run())
    assert held_ms <= 10_000 + ORDER_WINDOW_GUARD_MS, f"creates still held for {held_ms} ms of a 10 s window"


def test_a_retry_after_lasts_its_time_while_a_forward_step_is_caught_up() -> None:
    """After a forward step, confirmed by two checks: a 429 Retry-After of 60 s lets requests go ~3 s early."""
    host = _Host()
    budget = RateBudget()

    async def run() -> tuple[int, int]:
        core, _clock, _client = _core(host, budget)
        await core.start()
        host.wall += HOUR_MS * MS  # the host clock stepped an hour forward (or an NTP correction of a slow clock)
        await core.sync_time()
        await core.sync_time()  # step confirmed: estimate exact now
        host.run(30_000)  # half a minute into the clock-check period
        true_429 = host.true // MS
        budget.on_throttled(http_status=429, retry_after_s=60, now_ms=core._server_now())
        # Advance in 100 ms steps until the gateway would admit a request again (no sync during a block).
        while budget.reserve(EndpointKind.FETCH_ORDER, core._server_now()).__class__ is Wait:
            host.run(100)
        sent_true = host.true // MS
        await core.close()
        return sent_true - true_429, core._server_now() - host.true // MS

    waited_ms, error = asyncio.run(run())
    assert waited_ms >= 60_000, f"a request admitted {waited_ms} ms after a 60 s Retry-After (estimate off {error})"


def test_the_estimate_does_not_drift_between_checks() -> None:
    host = _Host()
    budget = RateBudget()

    async def run() -> int:
        core, _clock, _client = _core(host, budget)
        await core.start()
        host.wall += HOUR_MS * MS
        await core.sync_time()
        await core.sync_time()
        host.run(59_000)  # just before the next minute's check
        err = core._server_now() - host.true // MS
        await core.close()
        return err

    error = asyncio.run(run())
    assert abs(error) <= ORDER_WINDOW_GUARD_MS, f"exchange time estimate {error} ms off before the next check"


def test_a_418_ban_lasts_its_time_after_a_large_forward_step() -> None:
    host = _Host()
    budget = RateBudget()

    async def run() -> int:
        core, _clock, _client = _core(host, budget)
        await core.start()
        host.wall += 6 * HOUR_MS * MS  # a host clock 6 h slow put right by NTP (or a VM restored)
        await core.sync_time()
        await core.sync_time()
        true_418 = host.true // MS
        budget.on_throttled(http_status=418, retry_after_s=7200, now_ms=core._server_now())  # a 2 h ban
        while isinstance(budget.reserve(EndpointKind.FETCH_ORDER, core._server_now()), Wait):
            host.run(1_000)
        await core.close()
        return host.true // MS - true_418

    waited_ms = asyncio.run(run())
    assert waited_ms >= 7_200_000, f"requests sent {7_200_000 - waited_ms} ms before the 418 ban ends"
