"""Binance.US mode: its own published limits, and listenKeys that expire 60 minutes after creation or the last
keepalive (binance-spot.md §9.1), on the simulator's clock."""

from __future__ import annotations

import asyncio

import requests

from sim import RateLimitConfig, SimConfig, Simulator
from tests.sim._wsclient import ClientConnection, connect, recv_json

T0 = 1_767_225_600_000
MINUTE = 60_000


class ManualClock:
    """An injected simulator clock advanced by hand (listenKey calls are unsigned: any time will do)."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_binance_us_mode_defaults_to_its_own_limits() -> None:
    us = SimConfig(exchange_mode="binanceus")
    assert (us.rate_limits.request_weight_per_minute, us.rate_limits.orders_per_10s) == (1200, 100)
    assert us.rate_limits.orders_per_day == 200000
    assert SimConfig().rate_limits.request_weight_per_minute == 6000
    # Limits given explicitly are kept; those not given still default to Binance.US's.
    partial = SimConfig(exchange_mode="binanceus", rate_limits={"orders_per_10s": 7})
    assert (partial.rate_limits.request_weight_per_minute, partial.rate_limits.orders_per_10s) == (1200, 7)
    off = SimConfig(exchange_mode="binanceus", rate_limits=RateLimitConfig(enabled=False))
    assert (off.rate_limits.enabled, off.rate_limits.request_weight_per_minute) == (False, 1200)
    explicit = SimConfig(exchange_mode="binanceus", rate_limits=RateLimitConfig(request_weight_per_minute=6000))
    assert explicit.rate_limits.request_weight_per_minute == 6000


def test_binance_us_mode_serves_and_enforces_its_limits() -> None:
    clock = ManualClock(T0)
    with Simulator(SimConfig(exchange_mode="binanceus"), clock=clock) as sim:
        info = requests.get(sim.urls.rest + "/api/v3/exchangeInfo", timeout=5).json()  # weight 20
        limits = {(r["rateLimitType"], r["interval"], r["intervalNum"]): r["limit"] for r in info["rateLimits"]}
        assert limits[("REQUEST_WEIGHT", "MINUTE", 1)] == 1200
        assert limits[("ORDERS", "SECOND", 10)] == 100 and limits[("ORDERS", "DAY", 1)] == 200000
        statuses = [requests.get(sim.urls.rest + "/api/v3/exchangeInfo", timeout=5).status_code for _ in range(60)]
        assert statuses.count(200) == 59 and statuses[-1] == 429  # 1200 / 20 = 60 calls in all
        assert "current limit is 1200 request weight" in requests.get(sim.urls.rest + "/api/v3/time", timeout=5).text


def _listen_key(sim: Simulator) -> str:
    headers = {"X-MBX-APIKEY": sim.accounts[0].api_key}
    return str(requests.post(sim.urls.rest + "/api/v3/userDataStream", headers=headers, timeout=5).json()["listenKey"])


def _keepalive(sim: Simulator, key: str) -> requests.Response:
    headers = {"X-MBX-APIKEY": sim.accounts[0].api_key}
    return requests.put(sim.urls.rest + f"/api/v3/userDataStream?listenKey={key}", headers=headers, timeout=5)


async def _expired_then_closed(ws: ClientConnection, key: str) -> None:
    event = await recv_json(ws)
    assert event["e"] == "listenKeyExpired" and event["listenKey"] == key, event
    await asyncio.wait_for(ws.wait_closed(), 5)


def test_a_listen_key_expires_60_minutes_after_its_last_keepalive() -> None:
    clock = ManualClock(T0)

    async def main(sim: Simulator, key: str) -> None:
        async with connect(sim.urls.stream + "ws/" + key) as ws:
            clock.now += 59 * MINUTE
            assert (await asyncio.to_thread(_keepalive, sim, key)).json() == {}  # alive until T0 + 119 min
            clock.now += 59 * MINUTE
            assert await asyncio.to_thread(sim.control.expire_due_listen_keys) == 0
            await asyncio.to_thread(sim.control.credit, None, "USDT", "1")
            assert [(await recv_json(ws))["e"] for _ in range(2)] == ["balanceUpdate", "outboundAccountPosition"]
            clock.now += MINUTE  # 60 minutes since the keepalive
            assert await asyncio.to_thread(sim.control.expire_due_listen_keys) == 1
            await _expired_then_closed(ws, key)
        gone = await asyncio.to_thread(_keepalive, sim, key)
        assert gone.status_code == 400 and gone.json()["code"] == -1125

    with Simulator(SimConfig(exchange_mode="binanceus"), clock=clock) as sim:
        asyncio.run(main(sim, _listen_key(sim)))
        assert [f["kind"] for f in sim.control.ledger()["faults"]] == ["listen_key_expired"]


def test_an_expired_key_is_gone_for_a_late_keepalive_and_its_stream_told_without_a_request() -> None:
    clock = ManualClock(T0)

    async def main(sim: Simulator, key: str, late: str) -> None:
        async with connect(sim.urls.stream + "ws/" + key) as ws:
            clock.now += 60 * MINUTE
            # Nobody asks: the simulator finds the expired key by itself (its sweep runs every fraction of a
            # second on the simulator's clock) and tells the stream.
            await _expired_then_closed(ws, key)
        # A keepalive that comes too late finds the key gone, even before any sweep.
        gone = await asyncio.to_thread(_keepalive, sim, late)
        assert gone.json()["code"] == -1125

    with Simulator(SimConfig(exchange_mode="binanceus"), clock=clock) as sim:
        key = _listen_key(sim)
        clock.now += MINUTE
        late = _listen_key(sim)  # expires a minute after `key`
        asyncio.run(main(sim, key, late))
