"""A lookup or cancel answered "order not found" (-2013, -2011) is an answer, not a failed exchange call: after a
restart on the embedded simulator every restored order is looked up and not found, and counting those as
failures raised a CRITICAL `api_errors` alert over nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import ccxt

from actors.gateway import GatewayCore
from engine.clock import ManualClock
from engine.domain import Priority
from engine.exchange import OrderNotFound
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.venue import ResponseHook

NOT_FOUND_FETCH = 'binance {"code":-2013,"msg":"Order does not exist."}'
NOT_FOUND_CANCEL = 'binance {"code":-2011,"msg":"Unknown order sent."}'


class _Client:
    """Knows no order; the account call fails with a 400 that is no "not found"."""

    def __init__(self, hook: ResponseHook) -> None:
        self._hook = hook
        self.options: dict[str, Any] = {}

    async def private_get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._hook(400, {}, "GET", "/api/v3/order")
        raise ccxt.OrderNotFound(NOT_FOUND_FETCH)

    async def private_delete_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._hook(400, {}, "DELETE", "/api/v3/order")
        raise ccxt.OrderNotFound(NOT_FOUND_CANCEL)

    async def private_get_account(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._hook(400, {}, "GET", "/api/v3/account")
        raise ccxt.BadRequest('binance {"code":-1102,"msg":"Mandatory parameter was not sent."}')

    async def close(self) -> None:
        return None


def test_not_found_answers_are_not_counted_as_failed_calls() -> None:
    clock = ManualClock(1_700_000_000_000)

    async def run() -> tuple[list[GatewayResult], Any]:
        core = GatewayCore(_Client, clock=clock)
        await core.start(sync_time=False)
        results: list[GatewayResult] = []
        requests = [GatewayRequest(Op.FETCH_ORDER, {"origClientOrderId": f"bx-{i}"}, Priority.FALLBACK, key=f"bx-{i}",
                                   reply_to=results.append) for i in range(25)]  # fmt: skip
        requests.append(GatewayRequest(Op.CANCEL_ORDER, {"origClientOrderId": "bx-c"}, Priority.CANCEL, key="bx-c",
                                       reply_to=results.append))  # fmt: skip
        requests.append(GatewayRequest(Op.ACCOUNT, {}, Priority.FALLBACK, key="wallet", reply_to=results.append))
        core.enqueue_many(requests)
        await asyncio.wait_for(core.wait_idle(), 5)
        stats = core.stats()
        await core.close()
        return results, stats

    results, stats = asyncio.run(run())
    assert len(results) == 27
    assert sum(isinstance(r.error, OrderNotFound) for r in results) == 26
    assert stats.failed == 1, "only the account call failed; 26 orders were answered 'not found'"
    assert stats.not_found == 26
