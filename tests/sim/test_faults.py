"""Every fault of the issue: REST faults, user-stream event faults, WS faults; each visible in the ledger."""

from __future__ import annotations

import asyncio
import time

import ccxt
import pytest
import requests
import websockets

from sim import FaultSchedule, FaultSpec, SimConfig, Simulator
from sim._faults import REST_KINDS
from tests.sim._helpers import make_ccxt, running
from tests.sim._wsclient import connect, next_event, recv_json, request, subscribe_request
from tests.sim.test_auth import _signed, raw_post
from tests.sim.test_ratelimit import ManualClock

LIMIT = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.001",
    "price": "60000",
}


def test_probabilistic_faults_are_reproducible_by_seed() -> None:
    def pattern(seed: int) -> list[int]:
        fs = FaultSchedule(seed)
        fs.add(FaultSpec(kind="http_error", target="POST /api/v3/order", probability=0.5))
        return [len(fs.take("POST /api/v3/order", REST_KINDS, i)) for i in range(40)]

    assert pattern(1) == pattern(1)
    assert pattern(1) != pattern(2)
    assert 5 < sum(pattern(1)) < 35
    fs = FaultSchedule(0)
    fid = fs.add(FaultSpec(kind="latency", target="* /api/v3/*", count=2, latency_ms=5))
    assert fs.take("GET /sapi/v1/x", REST_KINDS, 0) == []
    assert len(fs.take("GET /api/v3/time", REST_KINDS, 0)) == 1
    assert fs.active()[0]["remaining"] == 1
    assert len(fs.take("GET /api/v3/time", REST_KINDS, 0)) == 1
    assert fs.take("GET /api/v3/time", REST_KINDS, 0) == [] and not fs.remove(fid)
    assert [e["kind"] for e in fs.log] == ["latency", "latency"]


def test_latency_and_status_faults() -> None:
    with running() as sim:
        c = sim.control
        c.add_fault({"kind": "latency", "target": "GET /api/v3/time", "count": 1, "latency_ms": 300})
        t0 = time.monotonic()
        assert requests.get(sim.urls.rest + "/api/v3/time", timeout=5).status_code == 200
        assert time.monotonic() - t0 >= 0.3
        c.add_fault({"kind": "rate_limit", "target": "GET /api/v3/time", "count": 1, "retry_after": 7})
        r = requests.get(sim.urls.rest + "/api/v3/time", timeout=5)
        assert (r.status_code, r.json()["code"], r.headers["Retry-After"]) == (429, -1003, "7")
        c.add_fault({"kind": "ban", "target": "GET /api/v3/time", "count": 1, "retry_after": 99})
        r = requests.get(sim.urls.rest + "/api/v3/time", timeout=5)
        assert (r.status_code, r.json()["code"], r.headers["Retry-After"]) == (418, -1003, "99")
        assert requests.get(sim.urls.rest + "/api/v3/time", timeout=5).status_code == 200
        kinds = [f["kind"] for f in c.ledger()["faults"]]
        assert kinds == ["latency", "rate_limit", "ban"]


def test_5xx_with_and_without_the_order_created() -> None:
    with running() as sim:
        acc, c = sim.accounts[0], sim.control
        c.add_fault(
            {
                "kind": "http_error",
                "target": "POST /api/v3/order",
                "count": 1,
                "status": 503,
                "code": -1006,
                "execute": True,
            }
        )
        r = _signed(sim, "POST", "/api/v3/order", {**LIMIT, "newClientOrderId": "made"}, acc.api_key, acc.secret)
        assert (r.status_code, r.json()["code"]) == (503, -1006)
        c.add_fault(
            {
                "kind": "http_error",
                "target": "POST /api/v3/order",
                "count": 1,
                "status": 504,
                "code": -1007,
                "msg": "Timeout waiting for response from backend server. Send status unknown; "
                "execution status unknown.",
                "execute": False,
            }
        )
        r = _signed(sim, "POST", "/api/v3/order", {**LIMIT, "newClientOrderId": "lost"}, acc.api_key, acc.secret)
        assert (r.status_code, r.json()["code"]) == (504, -1007)
        ids = {o["clientOrderId"] for o in c.ledger()["orders"]}
        assert "made" in ids and "lost" not in ids
        ex = make_ccxt(sim)
        ex.load_markets()
        c.add_fault(
            {
                "kind": "http_error",
                "target": "POST /api/v3/order",
                "count": 1,
                "status": 503,
                "code": -1006,
                "execute": True,
            }
        )
        with pytest.raises(ccxt.OperationFailed):
            ex.create_order("BTC/USDT", "limit", "buy", 0.001, 60000, {"clientOrderId": "ccxt-5xx"})
        assert ex.fetch_order(None, "BTC/USDT", {"clientOrderId": "ccxt-5xx"})["status"] == "open"


def test_response_withheld_after_the_order_was_accepted() -> None:
    with running() as sim:
        acc, c = sim.accounts[0], sim.control
        c.add_fault({"kind": "withhold", "target": "POST /api/v3/order", "count": 1, "hold_s": 1.5})
        with pytest.raises(requests.exceptions.ReadTimeout):
            raw_post(sim, {**LIMIT, "newClientOrderId": "held"}, acc.api_key, acc.secret, timeout=0.3)
        got = _signed(
            sim, "GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "held"}, acc.api_key, acc.secret
        )
        assert got.json()["status"] == "NEW"


def test_clock_skew_and_visibility_lag() -> None:
    clock = ManualClock(1_767_225_600_000)
    with Simulator(SimConfig(), clock=clock) as sim:
        acc, c = sim.accounts[0], sim.control
        c.add_fault({"kind": "clock_skew", "target": "* /api/v3/account", "count": 1, "skew_ms": -2000})
        r = _signed(sim, "GET", "/api/v3/account", {}, acc.api_key, acc.secret, ts=clock.now)
        assert (r.status_code, r.json()["code"]) == (400, -1021)
        c.add_fault({"kind": "visibility_lag", "target": "POST /api/v3/order", "count": 1, "lag_ms": 5000})
        placed = _signed(
            sim, "POST", "/api/v3/order", {**LIMIT, "newClientOrderId": "lag"}, acc.api_key, acc.secret, ts=clock.now
        )
        oid = str(placed.json()["orderId"])
        q = _signed(
            sim, "GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": oid}, acc.api_key, acc.secret, ts=clock.now
        )
        assert q.json() == {"code": -2013, "msg": "Order does not exist."}
        d = _signed(
            sim,
            "DELETE",
            "/api/v3/order",
            {"symbol": "BTCUSDT", "origClientOrderId": "lag"},
            acc.api_key,
            acc.secret,
            ts=clock.now,
        )
        assert d.json() == {"code": -2011, "msg": "Unknown order sent."}
        op = _signed(sim, "GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}, acc.api_key, acc.secret, ts=clock.now)
        assert op.json() == []
        clock.now += 5000
        q = _signed(
            sim, "GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": oid}, acc.api_key, acc.secret, ts=clock.now
        )
        assert q.json()["status"] == "NEW"
        assert [f["kind"] for f in c.ledger()["faults"]] == ["clock_skew", "visibility_lag"]


def test_event_faults_drop_duplicate_reorder() -> None:
    async def main(sim: Simulator) -> list[str]:
        c = sim.control
        async with connect(sim.urls.ws_api) as ws:
            acc = sim.accounts[0]
            assert (await request(ws, subscribe_request(acc.api_key, acc.secret)))["status"] == 200
            # Each credit sends balanceUpdate then outboundAccountPosition: events 1..2 per credit.
            await asyncio.to_thread(c.add_fault, {"kind": "drop_events", "target": "user:main", "count": 1})
            await asyncio.to_thread(c.credit, None, "USDT", "1")
            await asyncio.to_thread(c.add_fault, {"kind": "duplicate_events", "target": "user:*", "count": 1})
            await asyncio.to_thread(c.credit, None, "USDT", "2")
            await asyncio.to_thread(c.add_fault, {"kind": "reorder_events", "target": "user:main", "count": 1})
            await asyncio.to_thread(c.credit, None, "USDT", "3")
            seen = []
            for _ in range(6):
                ev = (await recv_json(ws))["event"]
                seen.append(f"{ev['e']}:{ev.get('d', '')}")
            return seen

    with running() as sim:
        seen = asyncio.run(main(sim))
        assert seen == [
            "outboundAccountPosition:",  # the balanceUpdate of credit 1 was dropped
            "balanceUpdate:2.00000000",
            "balanceUpdate:2.00000000",  # duplicated
            "outboundAccountPosition:",
            "outboundAccountPosition:",
            "balanceUpdate:3.00000000",  # reordered
        ]
        kinds = [f["kind"] for f in sim.control.ledger()["faults"]]
        assert kinds == ["drop_events", "duplicate_events", "reorder_events"]


def test_ws_terminations_shutdown_and_rejected_subscribe() -> None:
    async def main(sim: Simulator) -> None:
        c = sim.control
        acc = sim.accounts[0]
        async with connect(sim.urls.ws_api) as ws:
            assert (await request(ws, subscribe_request(acc.api_key, acc.secret)))["status"] == 200
            assert await asyncio.to_thread(c.event_stream_terminated) == 1
            term = await next_event(ws, "eventStreamTerminated")
            assert term["subscriptionId"] == 0
            assert await asyncio.to_thread(c.server_shutdown) == 1
            shut = await recv_json(ws)
            assert shut["event"]["e"] == "serverShutdown" and "subscriptionId" not in shut
            await asyncio.to_thread(
                c.add_fault,
                {
                    "kind": "reject_subscribe",
                    "target": "ws-api",
                    "count": 1,
                    "status": 401,
                    "code": -2015,
                    "msg": "Invalid API-key, IP, or permissions for action.",
                },
            )
            rej = await request(ws, subscribe_request(acc.api_key, acc.secret))
            assert (rej["status"], rej["error"]["code"]) == (401, -2015)
            ok = await request(ws, subscribe_request(acc.api_key, acc.secret))
            assert ok["result"] == {"subscriptionId": 1}
        async with connect(sim.urls.stream + "ws") as mws:
            await asyncio.to_thread(c.add_fault, {"kind": "reject_subscribe", "target": "market", "count": 1})
            await mws.send('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}')
            refused = await recv_json(mws)  # as Binance's market streams answer: code and msg, no `error` wrapper
            assert (refused["code"], "error" in refused) == (2, False)

    with running() as sim:
        asyncio.run(main(sim))
        kinds = [f["kind"] for f in sim.control.ledger()["faults"]]
        assert kinds == ["event_stream_terminated", "server_shutdown", "reject_subscribe", "reject_subscribe"]


def test_stall_stops_pongs() -> None:
    async def main(sim: Simulator) -> None:
        async with connect(sim.urls.ws_api, ping_interval=0.3, ping_timeout=1.0) as ws:
            assert (await request(ws, {"id": 1, "method": "ping"}))["result"] == {}
            assert await asyncio.to_thread(sim.control.stall_ws, "ws-api") == 1
            with pytest.raises(websockets.ConnectionClosed) as exc:
                await asyncio.wait_for(ws.recv(), 5)
            assert exc.value.rcvd is None or exc.value.rcvd.code != 1000  # closed by the keepalive timeout

    with running() as sim:
        asyncio.run(main(sim))
        assert [f["kind"] for f in sim.control.ledger()["faults"]] == ["ws_stall"]


def test_stop_does_not_wait_for_withheld_responses() -> None:
    sim = Simulator(SimConfig()).start()
    try:
        acc = sim.accounts[0]
        sim.control.add_fault({"kind": "withhold", "target": "POST /api/v3/order", "hold_s": 60})
        with pytest.raises(requests.exceptions.ReadTimeout):
            raw_post(sim, LIMIT, acc.api_key, acc.secret, timeout=0.3)
    finally:
        t0 = time.monotonic()
        sim.stop()
    assert time.monotonic() - t0 < 5


async def _events_until_closed(ws: websockets.ClientConnection, seen: list[object]) -> None:
    while True:
        msg = await recv_json(ws, within_s=5)
        if "event" in msg:
            seen.append(msg)


@pytest.mark.parametrize("kind", ["ws_close", "ws_abort", "ws_stall"])
def test_scheduled_connection_faults_on_the_user_stream(kind: str) -> None:
    async def main(sim: Simulator) -> None:
        acc = sim.accounts[0]
        seen: list[object] = []
        async with connect(sim.urls.ws_api, ping_interval=0.3, ping_timeout=1.0) as ws:
            assert (await request(ws, subscribe_request(acc.api_key, acc.secret)))["status"] == 200
            await asyncio.to_thread(sim.control.add_fault, {"kind": kind, "target": "user:main", "count": 1})
            await asyncio.to_thread(sim.control.credit, None, "USDT", "1")
            with pytest.raises(websockets.ConnectionClosed):
                await _events_until_closed(ws, seen)
            assert seen == []  # the event that was due is lost with the connection

    with running() as sim:
        asyncio.run(main(sim))
        assert [f["kind"] for f in sim.control.ledger()["faults"]] == [kind]
        assert sim.control.wait_subscriptions(0)
