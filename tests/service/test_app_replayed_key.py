"""`POST /orders` with an idempotency key already executed answers 200 `duplicate: true` with what the original request
did — `trade` (its outcome) and `latest` (its most recent order) — not only its first order, whose state after a
timed-out limit reads canceled with nothing filled. Served by aiohttp's test server over a real engine on the
simulator; the engine's side of it is in tests/engine_e2e/test_replayed_keys.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.api import Engine, EventKind
from engine.config import Config
from engine.service._app import ApiState, EventHub, build_app
from sim import SimConfig, Simulator
from tests.engine_e2e._stack import Recorder

TOKEN = "t0ken-for-the-replayed-key-test"
PAIR = "BTC/USDT"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"pair": PAIR, "side": "buy", "amount": "0.01", "price": "61000", "idempotency_key": "replayed-1"}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Simulator(SimConfig(seed=5, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as sim:
        cfg = Config.model_validate({"stream": {"user_data": False, "market_data": False},
                                     "exchange": {"pair_whitelist": [PAIR]}})  # fmt: skip
        started = Engine.start(cfg, sim=sim, database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                               spool_path=tmp_path / "s.jsonl")  # fmt: skip
        try:
            yield started
        finally:
            started.stop(graceful=False)


async def _post(state: ApiState, body: dict[str, Any]) -> tuple[int, Any]:
    async with TestClient(TestServer(build_app(state), host="127.0.0.1", port=0)) as client:
        response = await client.post("/orders", json=body, headers=AUTH)
        return response.status, await response.json()


def test_a_replayed_key_answers_the_requests_trade_and_latest_order(engine: Engine) -> None:
    events = Recorder()
    engine.subscribe(events)
    state = ApiState(engine, TOKEN, EventHub())
    status, first = asyncio.run(_post(state, BODY))  # a marketable limit: filled at once
    assert status == 201 and "trade" not in first, first
    request_id = first["order"]["request_id"]
    events.wait(lambda r: any(e.request_id == request_id for e in r.of(EventKind.DONE)), what="done")

    status, again = asyncio.run(_post(state, BODY))
    assert status == 200 and again["duplicate"] is True, again
    assert again["trade"]["request_id"] == request_id and again["trade"]["status"] == "filled"
    assert again["trade"]["filled"] == "0.01"  # exact plain decimals, as everywhere in the API
    assert again["latest"]["client_order_id"] == first["order"]["client_order_id"]  # its only order
    assert again["latest"]["status"] == "filled"
