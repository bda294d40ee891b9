"""A request queued behind another of its pair (`conflict_policy = "queue"`) can be canceled before it ever
reaches the exchange: through `Engine.cancel_order` with the id its `Placement` carries, and through the control
API (`DELETE`), whose `POST` answers 504 with that id when the request is still waiting. The application is
served by aiohttp's own test server over a real engine on the simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

import engine.service._handlers as handlers
from engine.api import Accepted, CancelStatus, Engine, Refusal, RefusalReason
from engine.config import Config
from engine.service._app import ApiState, EventHub, build_app
from sim import SimConfig, Simulator

TOKEN = "t0ken-for-the-queued-cancel-test"
PAIR = "BTC/USDT"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Simulator(SimConfig(seed=5, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as sim:
        cfg = Config.model_validate({
            "stream": {"user_data": False, "market_data": False},
            "exchange": {"pair_whitelist": [PAIR]},
            "execution": {"conflict_policy": "queue", "limit_timeout_s": "3600"},
        })  # fmt: skip
        started = Engine.start(cfg, sim=sim, database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                               spool_path=tmp_path / "s.jsonl")  # fmt: skip
        try:
            yield started
        finally:
            started.stop(graceful=False)


def _sells(engine: Engine) -> list[Any]:
    return [o for o in engine.sim.control.ledger()["orders"] if o["side"] == "SELL"]  # type: ignore[union-attr]


def test_a_queued_request_is_canceled_by_its_placements_id_and_nothing_is_sent(engine: Engine) -> None:
    first = engine.place_order(PAIR, "buy", "0.01", "59000").result(timeout=20)
    assert isinstance(first, Accepted), first
    queued = engine.place_order(PAIR, "sell", "0.01", "61000")
    assert queued.request_id in engine.active_requests(PAIR)  # a barrier too: it is queued in the book
    withdrawn = engine.cancel_order(PAIR, queued.request_id).result(timeout=20)
    assert withdrawn.status is CancelStatus.WITHDRAWN and withdrawn.client_order_ids == (), withdrawn
    outcome = queued.result(timeout=20)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.CANCELED, outcome
    assert queued.request_id not in engine.active_requests(PAIR)
    assert _sells(engine) == []


def test_the_control_api_answers_a_waiting_post_with_its_request_id_and_deletes_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers, "_PLACE_TIMEOUT_S", 0.5)  # float-ok: seconds; the queued request waits longer

    async def run() -> tuple[int, Any, int, Any, int]:
        state = ApiState(engine, TOKEN, EventHub())
        async with TestClient(TestServer(build_app(state), host="127.0.0.1", port=0)) as client:
            first = await client.post("/orders", json={"pair": PAIR, "side": "buy", "amount": "0.01",
                                                       "price": "59000"}, headers=AUTH)  # fmt: skip
            assert first.status == 201, await first.json()
            waiting = await client.post("/orders", json={"pair": PAIR, "side": "sell", "amount": "0.01",
                                                         "price": "61000"}, headers=AUTH)  # fmt: skip
            body = await waiting.json()
            deleted = await client.delete(f"/orders/{PAIR}/{body.get('request_id')}", headers=AUTH)
            missing = await client.delete(f"/orders/{PAIR}/no-such-request", headers=AUTH)
            return waiting.status, body, deleted.status, await deleted.json(), missing.status

    status, body, deleted, deleted_body, missing = asyncio.run(run())
    assert status == 504 and body["error"] == "engine_timeout" and body["request_id"], body
    assert deleted == 202 and deleted_body["status"] == "withdrawn", deleted_body
    assert deleted_body["client_order_ids"] == [] and deleted_body["at_ack"] == []
    assert missing == 404
    assert body["request_id"] not in engine.active_requests(PAIR)
    assert _sells(engine) == []
