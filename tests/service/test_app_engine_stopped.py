"""The control API between the engine's stop and its own: every route that reaches the engine answers 503
`engine_unavailable`, never a 500 (the engine's `EngineStopped`, as pykka's dead-actor error before it).

The application is served by aiohttp's own test server on an ephemeral loopback port over a fake engine.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pykka
import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.api import EngineStopped
from engine.service._app import ApiState, EventHub, build_app

TOKEN = "t0ken-for-the-app-test"


class _StoppedEngine:
    def __init__(self, error: Exception) -> None:
        self._error = error
        self.config = SimpleNamespace(
            risk=SimpleNamespace(kill_switch=False), exchange=SimpleNamespace(pair_whitelist=["BTC/USDT"])
        )

    def open_orders(self, pair: str | None = None) -> Any:
        raise self._error

    def order_detail(self, pair: str, client_order_id: str) -> Any:
        raise self._error


async def _get(engine: _StoppedEngine, path: str) -> tuple[int, Any]:
    app = build_app(ApiState(engine, TOKEN, EventHub()))  # type: ignore[arg-type]
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        response = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        return response.status, await response.json()


@pytest.mark.parametrize("error", [EngineStopped("the engine is stopped: open_orders is not available"),
                                   pykka.ActorDeadError("RootActor not found")])  # fmt: skip
@pytest.mark.parametrize("path", ["/orders", "/orders?pair=BTC/USDT", "/orders/BTC/USDT/bx-any"])
def test_a_stopped_engine_is_503_engine_unavailable(error: Exception, path: str) -> None:
    status, body = asyncio.run(_get(_StoppedEngine(error), path))
    assert status == 503 and body["error"] == "engine_unavailable", body
