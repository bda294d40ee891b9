"""`GatewayCore.wait_idle` is woken when the last request ends: no polling while a request waits for the budget."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from actors.gateway import GatewayCore
from engine.clock import ManualClock
from engine.domain import Priority
from engine.exchange._ratebudget import RateBudget
from engine.gateway import GatewayRequest, Op
from engine.venue import ResponseHook

START_MS = 1_700_000_000_000


class _Client:
    def __init__(self, hook: ResponseHook) -> None:
        self.options: dict[str, Any] = {}

    async def private_get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        return None


def test_wait_idle_does_not_poll_while_a_request_waits_out_a_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    # It slept 1 ms at a time while a request sat queued behind the budget: a busy loop for as long as a
    # Retry-After lasts (minutes under a ban), on the loop every request of the engine goes through.
    real_sleep = asyncio.sleep
    timed_sleeps: list[float] = []

    async def counting_sleep(delay: float, result: Any = None) -> Any:
        if delay > 0:
            timed_sleeps.append(delay)
        return await real_sleep(delay, result)

    clock = ManualClock(START_MS)

    async def run() -> tuple[bool, bool]:
        core = GatewayCore(_Client, clock=clock, budget=RateBudget(()))
        await core.start(sync_time=False)
        core.budget.on_throttled(http_status=429, retry_after_s=30, now_ms=core._server_now())
        core.enqueue(GatewayRequest(Op.FETCH_ORDER, {}, Priority.FALLBACK, key="bx-waiting"))
        monkeypatch.setattr(asyncio, "sleep", counting_sleep)
        idle = asyncio.ensure_future(core.wait_idle())
        for _ in range(20):  # loop turns only: no time passes, the request stays queued
            await real_sleep(0)
        waited = not idle.done()
        clock.advance(30_000)  # the block is over
        core.wake()
        await asyncio.wait_for(idle, 10)
        monkeypatch.undo()
        second = asyncio.ensure_future(core.wait_idle())  # idle already: returns at once
        await real_sleep(0)
        await core.close()
        return waited, second.done()

    waited, returned_at_once = asyncio.run(run())
    assert waited and returned_at_once
    assert timed_sleeps == [], f"wait_idle polled: {len(timed_sleeps)} timed sleeps"


def test_every_waiter_hears_the_gateway_go_idle() -> None:
    clock = ManualClock(START_MS)

    async def run() -> list[bool]:
        core = GatewayCore(_Client, clock=clock, budget=RateBudget(()))
        await core.start(sync_time=False)
        core.budget.on_throttled(http_status=429, retry_after_s=30, now_ms=core._server_now())
        core.enqueue(GatewayRequest(Op.FETCH_ORDER, {}, Priority.FALLBACK, key="bx-waiting"))
        waiters = [asyncio.ensure_future(core.wait_idle()) for _ in range(3)]
        timed_out = asyncio.ensure_future(asyncio.wait_for(core.wait_idle(), 0.001))  # gives up: must not linger
        await asyncio.gather(timed_out, return_exceptions=True)
        clock.advance(30_000)
        core.wake()
        await asyncio.wait_for(asyncio.gather(*waiters), 10)
        done = [w.done() for w in waiters]
        await core.close()
        return done

    assert asyncio.run(run()) == [True, True, True]
