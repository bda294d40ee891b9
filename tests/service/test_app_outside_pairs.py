"""`GET /orders?pair=…` for a pair outside the whitelist: listed while the engine tracks orders there (its own from
before the whitelist changed), 404 otherwise. Served by aiohttp's test server over a fake engine.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from engine.domain import ClientOrderId, Order, OrderStatus, OrderType, Pair, RequestId, Side
from engine.service._app import ApiState, EventHub, build_app

TOKEN = "t0ken-for-the-outside-pairs-test"
ETH = Pair("ETH/USDT")
_NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _Engine:
    def __init__(self, tracked: dict[str, list[Order]]) -> None:
        self._tracked = tracked
        self.config = SimpleNamespace(
            risk=SimpleNamespace(kill_switch=False), exchange=SimpleNamespace(pair_whitelist=["BTC/USDT"])
        )

    def open_orders(self, pair: str | None = None) -> list[Order]:
        return list(self._tracked.get(pair or "", []))


def _order() -> Order:
    return Order(
        client_order_id=ClientOrderId("bx-eth-1"), request_id=RequestId("r-eth"), pair=ETH, side=Side.BUY,
        order_type=OrderType.LIMIT, status=OrderStatus.PARTIALLY_FILLED, price=Decimal(2900), amount=Decimal("0.1"),
        filled=Decimal("0.04"), remaining=Decimal("0.06"), quote_filled=Decimal("116"), created_at=_NOW,
        updated_at=_NOW,
    )  # fmt: skip


async def _get(engine: _Engine, path: str) -> tuple[int, Any]:
    app = build_app(ApiState(engine, TOKEN, EventHub()))  # type: ignore[arg-type]
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        response = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        return response.status, await response.json()


def test_a_tracked_pair_outside_the_whitelist_is_listed() -> None:
    status, body = asyncio.run(_get(_Engine({"ETH/USDT": [_order()]}), "/orders?pair=ETH/USDT"))
    assert status == 200 and [o["client_order_id"] for o in body["orders"]] == ["bx-eth-1"], body


def test_an_untracked_pair_outside_the_whitelist_is_404() -> None:
    status, body = asyncio.run(_get(_Engine({}), "/orders?pair=ETH/USDT"))
    assert status == 404 and body["error"] == "not_found", body
