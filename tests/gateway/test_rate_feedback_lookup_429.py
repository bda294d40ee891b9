"""Found by a mutation audit (no test failed with the protection removed): a weight 429 on a NON-create endpoint (a
lookup) must hold every request until Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import ccxt

from actors.gateway import GatewayCore
from engine.clock import ManualClock
from engine.domain import Priority
from engine.exchange._ratebudget import RateBudget
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.venue import ResponseHook

MINUTE = 60_000
S = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE
TOO_MUCH_WEIGHT = '{"code":-1003,"msg":"Too much request weight used; current limit is 6000 per 1 MINUTE."}'


class _Client:
    def __init__(self, hook: ResponseHook) -> None:
        self._hook = hook
        self.options: dict[str, Any] = {}
        self.calls: list[str] = []
        self._refuse = True

    async def private_get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self.calls.append(f"fetch {params.get('newClientOrderId')}")
        if self._refuse:
            self._refuse = False
            self._hook(429, {"Retry-After": "30"}, "GET", "/api/v3/order")
            raise ccxt.DDoSProtection(f"binance 429 Too Many Requests {TOO_MUCH_WEIGHT}")
        self._hook(200, {}, "GET", "/api/v3/order")
        return {}

    async def private_post_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self.calls.append(f"create {params.get('newClientOrderId')}")
        self._hook(200, {}, "POST", "/api/v3/order")
        return {}

    async def private_delete_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self.calls.append("cancel")
        self._hook(200, {}, "DELETE", "/api/v3/order")
        return {}

    async def close(self) -> None:
        return None


def _req(op: Op, key: str, priority: Priority = Priority.ENTRY, **kw: Any) -> GatewayRequest:
    return GatewayRequest(op, {"newClientOrderId": key}, priority, key=key, **kw)


async def _settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def test_a_weight_429_on_a_lookup_holds_every_request_until_retry_after() -> None:
    clock = ManualClock(S + 1_000)
    budget = RateBudget()
    clients: list[_Client] = []

    def factory(hook: ResponseHook) -> _Client:
        clients.append(_Client(hook))
        return clients[0]

    async def run() -> tuple[GatewayResult, list[str], list[str]]:
        core = GatewayCore(factory, clock=clock, budget=budget)
        await core.start(sync_time=False)
        refused: asyncio.Future[GatewayResult] = asyncio.get_running_loop().create_future()
        core.enqueue(_req(Op.FETCH_ORDER, "f0", Priority.FALLBACK, reply_to=refused.set_result))
        # the lookup is retried (idempotent); its retry, like everything else, must wait out the block
        await _settle()
        core.enqueue_many([_req(Op.CREATE_ORDER, "bx-1"), _req(Op.CANCEL_ORDER, "c", Priority.CANCEL)])
        await _settle()
        during = list(clients[0].calls)
        clock.advance(31_000)
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 5)
        result = await asyncio.wait_for(refused, 5)
        await core.close()
        return result, during, clients[0].calls

    result, during, after = asyncio.run(run())
    assert during == ["fetch f0"], f"a weight 429 on a lookup must stop every request; sent meanwhile: {during}"
    assert budget.blocked_until_ms() >= S + 1_000 + 30_000
    assert "cancel" in after and "create bx-1" in after
    del result
