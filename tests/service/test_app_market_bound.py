"""`POST /orders` with a market order and a price: the price is the caller's bound, as with `Engine.place_order`,
and the order goes to the exchange as an IOC limit at `execution.max_slippage_pct` beyond it (it was refused 422,
"a market order takes no price", while the Python API executed the same request). Served by aiohttp's test server
over a real engine on the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.api import Engine
from engine.config import Config
from engine.service._app import ApiState, EventHub, build_app
from sim import SimConfig, Simulator

TOKEN = "t0ken-for-the-market-bound-test"
PAIR = "BTC/USDT"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Engine, Simulator]]:
    with Simulator(SimConfig(seed=5, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as sim:
        cfg = Config.model_validate({"stream": {"user_data": False, "market_data": False},
                                     "execution": {"max_slippage_pct": "0.5"},
                                     "exchange": {"pair_whitelist": [PAIR]}})  # fmt: skip
        started = Engine.start(cfg, sim=sim, database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                               spool_path=tmp_path / "s.jsonl")  # fmt: skip
        try:
            yield started, sim
        finally:
            started.stop(graceful=False)


async def _post(state: ApiState, body: dict[str, Any]) -> tuple[int, Any]:
    async with TestClient(TestServer(build_app(state), host="127.0.0.1", port=0)) as client:
        response = await client.post("/orders", json=body, headers=AUTH)
        return response.status, await response.json()


def test_a_market_buy_with_a_price_goes_out_as_an_ioc_limit_at_the_bound(rig: tuple[Engine, Simulator]) -> None:
    engine, sim = rig
    body = {"pair": PAIR, "side": "buy", "amount": "0.01", "order_type": "market", "price": "60000"}
    status, answer = asyncio.run(_post(ApiState(engine, TOKEN, EventHub()), body))
    assert status == 201, answer
    order = answer["order"]
    assert (order["order_type"], order["time_in_force"], order["price"]) == ("limit", "IOC", "60300"), order
    sent = [o for o in sim.control.ledger()["orders"] if o["clientOrderId"] == order["client_order_id"]]
    assert [(o["type"], o["timeInForce"], Decimal(str(o["price"]))) for o in sent] == [("LIMIT", "IOC", Decimal(60300))]
