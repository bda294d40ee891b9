"""GatewayCore on its own loop with a fake client: the per-request cap, budget waits, stats."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from actors.gateway import GatewayCore
from engine.clock import ManualClock
from engine.domain import Priority
from engine.exchange import OutcomeUnknown
from engine.exchange._ratebudget import ORDER_WINDOW_GUARD_MS, LimitKind, RateBudget, RateLimit
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.venue import ResponseHook

NOW = 1_700_000_000_000


class FakeClient:
    """Answers creates at once, or never (`hang`); reports Binance's counters through the response hook."""

    def __init__(self, hook: ResponseHook, *, hang: bool = False) -> None:
        self._hook = hook
        self.hang = hang
        self.options: dict[str, Any] = {}
        self.sent: list[Mapping[str, str]] = []

    async def private_post_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self.sent.append(params)
        if self.hang:
            await asyncio.Event().wait()
        self._hook(200, {"X-MBX-USED-WEIGHT-1M": "7", "X-MBX-ORDER-COUNT-10S": "3", "Date": "x"}, "POST", "/o")
        return {"clientOrderId": params["newClientOrderId"]}

    async def close(self) -> None:
        return None


def _create(cid: str, reply: Callable[[GatewayResult], None]) -> GatewayRequest:
    params = {"symbol": "BTCUSDT", "newClientOrderId": cid}
    return GatewayRequest(Op.CREATE_ORDER, params, Priority.ENTRY, key=cid, reply_to=reply)


def _core(budget: RateBudget, clock: ManualClock, *, hang: bool = False, timeout_s: float = 5.0) -> GatewayCore:
    return GatewayCore(
        lambda hook: FakeClient(hook, hang=hang), clock=clock, budget=budget, request_timeout_s=timeout_s
    )


def test_a_hang_inside_the_client_is_capped_and_never_resent() -> None:
    async def run() -> list[GatewayResult]:
        results: list[GatewayResult] = []
        core = _core(RateBudget(()), ManualClock(NOW), hang=True, timeout_s=0.01)  # cap: timeout + 1 s
        await core.start(sync_time=False)
        core.enqueue(_create("bx-hang", results.append))
        await asyncio.wait_for(core.wait_idle(), 5)
        await core.close()
        return results

    [result] = asyncio.run(run())
    assert isinstance(result.error, OutcomeUnknown)  # looked up by client order id later, never resent
    assert result.attempts == 1


def test_budget_wait_then_send_and_stats() -> None:
    limits = (RateLimit(LimitKind.REQUEST_WEIGHT, 60_000, 100), RateLimit(LimitKind.ORDERS, 10_000, 2))

    async def run() -> tuple[list[GatewayResult], list[str], Any]:
        clock = ManualClock(NOW)
        results: list[GatewayResult] = []
        core = _core(RateBudget(limits, margin=0), clock)
        await core.start(sync_time=False)
        two_done = asyncio.Event()

        def reply(result: GatewayResult) -> None:
            results.append(result)
            if len(results) == 2:
                two_done.set()

        for i in range(3):
            core.enqueue(_create(f"bx-{i}", reply))
        await asyncio.wait_for(two_done.wait(), 5)
        held = [r.request.key for r in results]
        stats = core.stats()
        assert stats.queued == 1  # the third order waits for the next 10-second window
        clock.set(NOW + 10_000 + ORDER_WINDOW_GUARD_MS)  # the next window, past its first moments (the last full)
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 5)
        await core.close()
        return results, held, stats

    results, held, stats = asyncio.run(run())
    assert held == ["bx-0", "bx-1"]
    assert [r.request.key for r in results] == ["bx-0", "bx-1", "bx-2"] and all(r.ok for r in results)
    assert (stats.used_weight_1m, stats.weight_limit_1m) == (7, 100)  # the server's count beats the local one
    assert (stats.orders_10s, stats.order_limit_10s) == (3, 2)
    assert stats.rate_limits["ORDERS/10s"] == {"used": 3, "limit": 2, "ceiling": 2}
