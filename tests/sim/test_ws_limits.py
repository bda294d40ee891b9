"""WebSocket rate limits: the WS API shares the IP's request weight with REST (429 → 418 with ``data.retryAfter``),
a banned IP or a spent connection budget is refused at the handshake, and handshake faults (binance-spot.md §5,
§6.5)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sim import FaultSpec, RateLimitConfig, SimConfig, Simulator
from tests.sim._wsclient import ClientConnection, connect, recv_json, request

T0 = 1_767_225_600_000 + 20_000  # 20 s into a minute (and into a 5-minute window)


class ManualClock:
    """An injected simulator clock advanced by hand (requests here are unsigned: any time will do)."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _sim(clock: ManualClock, **limits: Any) -> Simulator:
    return Simulator(SimConfig(rate_limits=RateLimitConfig(**limits)), clock=clock)


def _burn_rest(sim: Simulator, times: int) -> list[requests.Response]:
    """`times` × GET exchangeInfo (weight 20, unsigned)."""
    return [requests.get(sim.urls.rest + "/api/v3/exchangeInfo", timeout=5) for _ in range(times)]


async def _refused(url: str) -> Any:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    return refused.value.response


async def _closed(ws: ClientConnection) -> bool:
    """True once the server hung up (within 5 s), False if a frame came instead."""
    try:
        await asyncio.wait_for(ws.recv(), 5)
    except ConnectionClosed:
        return True
    return False


def test_ws_api_requests_share_the_ips_weight_with_rest_and_are_refused_over_it() -> None:
    clock = ManualClock(T0)

    async def main(sim: Simulator) -> None:
        async with connect(sim.urls.ws_api) as ws:  # +2
            ping = await request(ws, {"id": 1, "method": "ping"})  # +1
            [limit] = ping["rateLimits"]
            assert (limit["limit"], limit["count"]) == (100, 80 + 2 + 1)
            rest = await asyncio.to_thread(requests.get, sim.urls.rest + "/api/v3/ping", timeout=5)
            assert rest.headers["X-MBX-USED-WEIGHT-1M"] == "84"  # and REST sees the WS API's weight
            for n in range(2, 10):  # session.status costs 2: 84 → 100
                ok = await request(ws, {"id": n, "method": "session.status"})
                if ok["rateLimits"][0]["count"] == 100:
                    break
            over = await request(ws, {"id": "over", "method": "session.status"})
            assert over["status"] == 429 and over["error"]["code"] == -1003, over
            # data.retryAfter: when the weight window ends (epoch ms); the refused weight is not charged.
            assert over["error"]["data"] == {"serverTime": T0, "retryAfter": T0 - 20_000 + 60_000}
            assert over["rateLimits"][0]["count"] == 100
            # Going on past the 429 earns the ban (ban_after_violations=1): 418 until its end, then disconnected.
            banned = await request(ws, {"id": "ban", "method": "ping"})
            assert banned["status"] == 418 and "IP banned until" in banned["error"]["msg"], banned
            assert banned["error"]["data"]["retryAfter"] == T0 + 120_000
            assert await _closed(ws)
        # The ban holds for REST and for the WS API's handshake, with the wait in Retry-After.
        rest = await asyncio.to_thread(requests.get, sim.urls.rest + "/api/v3/ping", timeout=5)
        assert rest.status_code == 418
        clock.now += 30_000
        refused = await _refused(sim.urls.ws_api)
        assert refused.status_code == 418 and refused.headers["Retry-After"] == "90"
        assert b'"code":-1003' in refused.body and b"IP banned until" in refused.body
        async with connect(sim.urls.stream + "ws/btcusdt@bookTicker") as market:  # another host: not banned here
            assert (await recv_json(market))["s"] == "BTCUSDT"
        clock.now += 90_000  # the ban is over
        async with connect(sim.urls.ws_api) as ws:
            assert (await request(ws, {"id": 1, "method": "ping"}))["status"] == 200

    with _sim(clock, request_weight_per_minute=100, ban_after_violations=1) as sim:
        assert [r.status_code for r in _burn_rest(sim, 4)] == [200] * 4  # 80 weight
        asyncio.run(main(sim))


def test_a_ban_from_rest_refuses_the_ws_api_and_its_handshake() -> None:
    # The audit's probe: REST answered 418 while a WS API subscribe still got 200 (count 102 of a 100 limit).
    clock = ManualClock(T0)

    async def main(sim: Simulator, ws: ClientConnection) -> None:
        answer = await request(ws, {"id": "s", "method": "session.status"})
        assert answer["status"] == 418 and answer["error"]["data"]["retryAfter"] == T0 + 120_000, answer
        refused = await _refused(sim.urls.ws_api)
        assert refused.status_code == 418 and refused.headers["Retry-After"] == "120"

    async def session(sim: Simulator) -> None:
        async with connect(sim.urls.ws_api) as ws:  # opened before the ban
            await asyncio.to_thread(_burn_rest, sim, 7)  # 100 weight, then 429, then 418 (banned)
            await main(sim, ws)

    with _sim(clock, request_weight_per_minute=100, ban_after_violations=1) as sim:
        asyncio.run(session(sim))
        assert _burn_rest(sim, 1)[0].status_code == 418


def test_ban_ip_control_bans_rest_and_ws_api_until_lifted() -> None:
    clock = ManualClock(T0)

    async def main(sim: Simulator) -> None:
        until = await asyncio.to_thread(sim.control.ban_ip, 600)
        assert until == T0 + 600_000
        refused = await _refused(sim.urls.ws_api)
        assert refused.status_code == 418 and refused.headers["Retry-After"] == "600"
        rest = await asyncio.to_thread(requests.get, sim.urls.rest + "/api/v3/time", timeout=5)
        assert rest.status_code == 418 and rest.headers["Retry-After"] == "600"
        assert await asyncio.to_thread(sim.control.lift_ban)
        async with connect(sim.urls.ws_api) as ws:
            assert (await request(ws, {"id": 1, "method": "time"}))["result"] == {"serverTime": T0}

    with _sim(clock) as sim:
        asyncio.run(main(sim))


def test_connection_attempts_over_the_budget_are_refused_with_429_per_host() -> None:
    clock = ManualClock(T0)

    async def main(sim: Simulator) -> None:
        for _ in range(3):
            async with connect(sim.urls.ws_api):
                pass
        refused = await _refused(sim.urls.ws_api)
        # Until the 5-minute window ends (T0 is 20 s into it); the refused attempt counted too.
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "280"
        assert b"connection attempts" in refused.body
        for _ in range(3):  # the streams' host has a budget of its own
            async with connect(sim.urls.stream + "ws/btcusdt@bookTicker"):
                pass
        assert (await _refused(sim.urls.stream + "ws/btcusdt@bookTicker")).status_code == 429
        clock.now += 280_000
        async with connect(sim.urls.ws_api) as ws:
            assert (await request(ws, {"id": 1, "method": "ping"}))["status"] == 200

    with _sim(clock, connection_attempts_per_5m=3) as sim:
        asyncio.run(main(sim))


@pytest.mark.parametrize("status", [429, 418])
def test_a_handshake_fault_refuses_the_upgrade_of_its_target_only(status: int) -> None:
    clock = ManualClock(T0)

    async def main(sim: Simulator) -> None:
        refused = await _refused(sim.urls.ws_api)
        assert refused.status_code == status and refused.headers["Retry-After"] == "7"
        assert b'"code":-1003' in refused.body
        async with connect(sim.urls.stream + "ws/btcusdt@bookTicker") as market:  # not its target
            assert (await recv_json(market))["s"] == "BTCUSDT"
        async with connect(sim.urls.ws_api) as ws:  # count=1: spent
            assert (await request(ws, {"id": 1, "method": "ping"}))["status"] == 200

    with _sim(clock) as sim:
        sim.control.add_fault(FaultSpec(kind="handshake", target="ws-api", status=status, retry_after=7, count=1))
        asyncio.run(main(sim))
        assert [f["kind"] for f in sim.control.ledger()["faults"]] == ["handshake"]


def test_a_rate_limited_subscribe_fault_says_when_to_retry() -> None:
    clock = ManualClock(T0)

    async def main(sim: Simulator) -> None:
        async with connect(sim.urls.ws_api) as ws:
            req = {"id": "s", "method": "userDataStream.subscribe.signature", "params": {}}
            answer = await request(ws, req)
            assert answer["status"] == 429 and answer["error"]["code"] == -1003
            assert answer["error"]["data"] == {"serverTime": T0, "retryAfter": T0 + 5_000}

    with _sim(clock) as sim:
        sim.control.add_fault(
            FaultSpec(kind="reject_subscribe", target="ws-api", status=429, code=-1003, msg="Too many requests.",
                      retry_after=5)
        )  # fmt: skip
        asyncio.run(main(sim))
