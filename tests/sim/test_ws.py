"""WS API user data (all key types, errors, unsubscribe), market streams and the Binance.US listenKey flow."""

from __future__ import annotations

import asyncio

import pytest
import requests

from sim import AccountSpec, SimConfig, Simulator
from tests.sim._wsclient import connect, next_event, recv_json, request, subscribe_request


def _cfg(rsa_pem: str, ed25519_pem: str) -> SimConfig:
    return SimConfig(
        accounts=[
            AccountSpec(),
            AccountSpec(name="rsa", api_key="rsakey1", secret=rsa_pem),
            AccountSpec(name="ed", api_key="edkey1", secret=ed25519_pem),
        ]
    )


def test_subscribe_all_key_types_and_unsubscribe(rsa_pem: str, ed25519_pem: str) -> None:
    async def main(sim: Simulator) -> None:
        async with connect(sim.urls.ws_api) as ws:
            ids = []
            for acc in sim.accounts:
                ack = await request(ws, subscribe_request(acc.api_key, acc.secret, recv_window=10000))
                assert ack["status"] == 200, ack
                assert ack["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
                ids.append(ack["result"]["subscriptionId"])
            assert ids == [0, 1, 2]
            dup = await request(ws, subscribe_request(sim.accounts[0].api_key, sim.accounts[0].secret))
            assert (dup["status"], dup["error"]["code"]) == (400, -2035)
            subs = await request(ws, {"id": 7, "method": "session.subscriptions"})
            assert subs["result"] == [{"subscriptionId": 0}, {"subscriptionId": 1}, {"subscriptionId": 2}]
            await asyncio.to_thread(sim.control.credit, "ed", "USDT", "5")
            ev = await next_event(ws, "balanceUpdate")
            assert ev["subscriptionId"] == 2 and ev["event"]["d"] == "5.00000000"
            un = await request(ws, {"id": 8, "method": "userDataStream.unsubscribe", "params": {"subscriptionId": 1}})
            assert un["result"] == {}
            term = await next_event(ws, "eventStreamTerminated")
            assert term["subscriptionId"] == 1
            bad = await request(ws, {"id": 9, "method": "userDataStream.unsubscribe", "params": {"subscriptionId": 1}})
            assert bad["error"]["code"] == -2036
            await request(ws, {"id": 10, "method": "userDataStream.unsubscribe"})
            assert (await request(ws, {"id": 11, "method": "session.subscriptions"}))["result"] == []

    with Simulator(_cfg(rsa_pem, ed25519_pem)) as sim:
        asyncio.run(main(sim))


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("bad_sig", 400, -1022), ("unknown_key", 401, -2015), ("bad_key", 401, -2014), ("old_ts", 400, -1021)],
)
def test_subscribe_errors(kind: str, status: int, code: int) -> None:
    async def main(sim: Simulator) -> None:
        acc = sim.accounts[0]
        req = {
            "bad_sig": lambda: subscribe_request(acc.api_key, acc.secret, bad=True),
            "unknown_key": lambda: subscribe_request("unknownkey", acc.secret),
            "bad_key": lambda: subscribe_request("bad key", acc.secret),
            "old_ts": lambda: subscribe_request(acc.api_key, acc.secret, ts=1_600_000_000_000),
        }[kind]()
        async with connect(sim.urls.ws_api) as ws:
            resp = await request(ws, req)
            assert (resp["status"], resp["error"]["code"]) == (status, code)
            assert resp["id"] == req["id"]

    with Simulator(SimConfig()) as sim:
        asyncio.run(main(sim))


def test_market_streams_raw_combined_and_subscribe() -> None:
    async def main(sim: Simulator) -> None:
        async with (
            connect(sim.urls.stream + "ws/btcusdt@bookTicker") as raw,
            connect(sim.urls.stream + "stream?streams=ethusdt@bookTicker/btcusdt@trade") as comb,
            connect(sim.urls.stream + "ws") as dyn,
        ):
            first = await recv_json(raw)
            assert first["s"] == "BTCUSDT" and "stream" not in first
            eth = await recv_json(comb)
            assert eth["stream"] == "ethusdt@bookTicker" and eth["data"]["s"] == "ETHUSDT"
            await dyn.send('{"method":"SUBSCRIBE","params":["ethbtc@bookTicker"],"id":5}')
            assert await recv_json(dyn) == {"result": None, "id": 5}
            await dyn.send('{"method":"LIST_SUBSCRIPTIONS","id":6}')
            while (msg := await recv_json(dyn)).get("id") != 6:
                pass
            assert msg["result"] == ["ethbtc@bookTicker"]
            await asyncio.to_thread(sim.control.set_price, "BTCUSDT", "64000")
            moved = await recv_json(raw)
            assert moved["b"].startswith("6399")
            await asyncio.to_thread(
                sim.control.place_external_order, None, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01"
            )
            trade = await recv_json(comb)
            while trade["stream"] != "btcusdt@trade" or trade["data"]["q"] != "0.01000000":
                trade = await recv_json(comb)
            assert trade["data"]["e"] == "trade" and trade["data"]["q"] == "0.01000000"

    with Simulator(SimConfig()) as sim:
        asyncio.run(main(sim))


def test_binance_us_listen_key_flow() -> None:
    async def main(sim: Simulator, key: str) -> None:
        async with connect(sim.urls.stream + "ws/" + key) as ws:
            await asyncio.to_thread(sim.control.credit, None, "USDT", "1")
            ev = await recv_json(ws)
            assert ev["e"] == "balanceUpdate" and "subscriptionId" not in ev

    with Simulator(SimConfig(exchange_mode="binanceus")) as sim:
        acc = sim.accounts[0]
        h = {"X-MBX-APIKEY": acc.api_key}
        key = requests.post(sim.urls.rest + "/api/v3/userDataStream", headers=h, timeout=5).json()["listenKey"]
        assert (
            requests.put(sim.urls.rest + f"/api/v3/userDataStream?listenKey={key}", headers=h, timeout=5).json() == {}
        )
        asyncio.run(main(sim, key))
        assert (
            requests.delete(sim.urls.rest + f"/api/v3/userDataStream?listenKey={key}", headers=h, timeout=5).json()
            == {}
        )
        gone = requests.put(sim.urls.rest + f"/api/v3/userDataStream?listenKey={key}", headers=h, timeout=5)
        assert gone.json()["code"] == -1125
    with Simulator(SimConfig()) as sim:  # binance mode: the retired listenKey endpoints are gone
        assert requests.post(sim.urls.rest + "/api/v3/userDataStream", timeout=5).status_code == 404


def test_background_market_mover_moves_prices() -> None:
    async def main(sim: Simulator) -> None:
        async with connect(sim.urls.stream + "ws/btcusdt@bookTicker") as ws:
            first = await recv_json(ws)
            updates = [await recv_json(ws) for _ in range(3)]  # pushed by the 20 ms ticker
            assert [u["u"] for u in updates] == sorted(u["u"] for u in updates)
            assert updates[-1]["u"] > first["u"]

    with Simulator(SimConfig(market_tick_interval_s=0.02, volatility=0.01)) as sim:
        asyncio.run(main(sim))
        assert sim.control.price("BTCUSDT") != 65000
