"""`DELETE /orders/{base}/{quote}/{request_id}` answers with what the engine's cancel did: 202 `cancel_sent` with
the orders whose cancel is queued, 409 `already_done` with the request's final status (it was a 404 "no open
order" before), 404 for a request the pair never had, 503 `halted` (retry) while the pair's actor restarts. The
application is served by aiohttp's own test server over a real engine on the simulator; the mapping of the
answers no real engine gives on demand (a database down, a timeout) is checked on `cancel_response` itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.api import Accepted, CancelOutcome, CancelStatus, Engine, EventKind
from engine.config import Config
from engine.domain import Pair, RequestId, TradeStatus
from engine.service._app import ApiState, EventHub, build_app
from engine.service._cancel_json import cancel_response
from engine.service._openapi import openapi_schema
from sim import SimConfig, Simulator

TOKEN = "t0ken-for-the-cancel-answers-test"
PAIR = "BTC/USDT"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Simulator(SimConfig(seed=5, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as sim:
        cfg = Config.model_validate({
            "stream": {"user_data": False, "market_data": False},
            "exchange": {"pair_whitelist": [PAIR]},
            "execution": {"limit_timeout_s": "3600"},
        })  # fmt: skip
        started = Engine.start(cfg, sim=sim, database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                               spool_path=tmp_path / "s.jsonl")  # fmt: skip
        try:
            yield started
        finally:
            started.stop(graceful=False)


async def _delete(engine: Engine, *paths: str) -> list[tuple[int, Any]]:
    state = ApiState(engine, TOKEN, EventHub())
    out = []
    async with TestClient(TestServer(build_app(state), host="127.0.0.1", port=0)) as client:
        for path in paths:
            response = await client.delete(path, headers=AUTH)
            out.append((response.status, await response.json()))
    return out


def test_a_resting_order_is_202_then_409_already_done_and_an_unknown_id_404(engine: Engine) -> None:
    done = threading.Event()
    accepted = engine.place_order(PAIR, "buy", "0.01", "59000").result(timeout=20)
    assert isinstance(accepted, Accepted), accepted
    request_id = accepted.order.request_id
    engine.subscribe(lambda e: done.set() if e.kind is EventKind.DONE and e.request_id == request_id else None)
    [(status, body)] = asyncio.run(_delete(engine, f"/orders/{PAIR}/{request_id}"))
    assert status == 202, body
    assert body["cancel_requested"] is True and body["status"] == "cancel_sent"
    assert body["client_order_ids"] == [accepted.order.client_order_id] and body["at_ack"] == []
    assert body["request_id"] == request_id and body["pair"] == PAIR and "no fallback follows" in body["message"]
    assert done.wait(20), "the canceled request never ended"
    (again, finished), (missing, unknown), (outside, _) = asyncio.run(
        _delete(engine, f"/orders/{PAIR}/{request_id}", f"/orders/{PAIR}/no-such-request", "/orders/ETH/USDT/x")
    )
    assert again == 409 and finished["error"] == "already_done" and finished["final_status"] == "canceled", finished
    assert missing == 404 and unknown["error"] == "not_found" and unknown["status"] == "unknown_request", unknown
    assert outside == 404


def test_a_pair_actor_restarting_is_503_halted_with_retry(engine: Engine) -> None:
    assert engine._routing.get(Pair(PAIR)).actor_ref.stop(timeout=10)  # dead, and no crash report: not restarted yet
    [(status, body)] = asyncio.run(_delete(engine, f"/orders/{PAIR}/any-request"))
    assert status == 503 and body["error"] == "halted", body
    assert body["details"] == {"retry": "1", "cause": "restarting"} and body["status"] == "unavailable"


def _outcome(status: CancelStatus, **fields: Any) -> CancelOutcome:
    return CancelOutcome(status, Pair(PAIR), RequestId("r1"), "why", **fields)


@pytest.mark.parametrize(
    ("outcome", "code", "error"),
    [
        (_outcome(CancelStatus.UNAVAILABLE, details={"retry": "1", "cause": "database"}), 503, "database_unavailable"),
        (_outcome(CancelStatus.UNAVAILABLE, details={"retry": "1", "cause": "timeout"}), 504, "engine_timeout"),
        (_outcome(CancelStatus.UNAVAILABLE, details={"retry": "1", "cause": "engine"}), 503, "engine_unavailable"),
        (_outcome(CancelStatus.SHUTTING_DOWN), 503, "engine_unavailable"),
        (_outcome(CancelStatus.NOT_WHITELISTED), 404, "not_found"),
        (_outcome(CancelStatus.ALREADY_DONE, final_status=TradeStatus.PARTIAL), 409, "already_done"),
    ],
)
def test_every_answer_that_is_not_a_cancel_has_its_http_status(outcome: CancelOutcome, code: int, error: str) -> None:
    status, body = cancel_response(outcome)
    assert (status, body["error"], body["status"], body["message"]) == (code, error, outcome.status.value, "why")


@pytest.mark.parametrize("status", [CancelStatus.CANCEL_SENT, CancelStatus.CANCEL_AT_ACK, CancelStatus.WITHDRAWN])
def test_every_cancel_that_stops_the_request_is_202(status: CancelStatus) -> None:
    code, body = cancel_response(_outcome(status, at_ack=("bx-1",)))
    assert code == 202 and body["status"] == status.value and body["at_ack"] == ["bx-1"]


def test_the_openapi_document_describes_the_cancels_answers() -> None:
    doc = openapi_schema(("BTC/USDT",))
    responses = doc["paths"]["/orders/{base}/{quote}/{request_id}"]["delete"]["responses"]
    assert set(responses) >= {"202", "404", "409", "422", "503", "504", "401"}
    assert responses["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/CancelAnswer")
    assert "already_done" in responses["409"]["description"]
    answer = doc["components"]["schemas"]["CancelAnswer"]
    assert set(answer["properties"]["status"]["enum"]) == {"cancel_sent", "cancel_at_ack", "withdrawn"}
    assert "already_done" in doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
