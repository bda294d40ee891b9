"""The standalone CLI (subprocess, SIGINT/SIGTERM), the HTTP control API and end-to-end determinism."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from sim import AccountSpec, SimConfig, Simulator
from tests.sim.test_auth import _signed
from tests.sim.test_ratelimit import ManualClock

ROOT = Path(__file__).resolve().parents[2]


def test_cli_prints_urls_and_keys_and_stops_on_signal() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = subprocess.Popen(
            [sys.executable, "-m", "sim.cli", "--seed", "3", "--symbols", "btcusdt,ethbtc", "--tick-interval", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            lines = []
            while not (line := proc.stdout.readline()).startswith("Press Ctrl+C"):
                assert line, "CLI exited early"
                lines.append(line)
            out = "".join(lines)
            rest = re.search(r"REST\s+(http://127\.0\.0\.1:\d+)", out)
            assert rest and "WS API    ws://127.0.0.1:" in out and "api key" in out
            assert AccountSpec().secret not in out  # secrets only with --show-secrets
            info = requests.get(rest.group(1) + "/api/v3/exchangeInfo", timeout=5).json()
            assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHBTC"]
            proc.send_signal(sig)
            assert proc.wait(timeout=10) == 0
            assert "simulator stopped" in proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_cli_does_not_import_ccxt() -> None:
    code = "import sys, sim.cli; assert 'ccxt' not in sys.modules, 'ccxt imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30)


def _ctl(sim: Simulator, op: str, **kw: Any) -> Any:
    r = requests.post(f"{sim.urls.rest}/_sim/{op}", json=kw, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def test_http_control_api() -> None:
    with Simulator(SimConfig()) as sim:
        assert _ctl(sim, "set_price", symbol="BTCUSDT", price="60000") == "60000.00000000"
        assert _ctl(sim, "move_price", symbol="BTCUSDT", delta="-100") == "59900.00000000"
        assert _ctl(sim, "spike", symbol="BTCUSDT", percent="10") == "65890.00000000"
        mids = _ctl(sim, "step_market", n=3)
        assert set(mids) == {"BTCUSDT", "ETHUSDT", "ETHBTC"}
        placed = _ctl(
            sim,
            "place_external_order",
            symbol="ETHUSDT",
            side="SELL",
            type="LIMIT",
            timeInForce="GTC",
            quantity="1",
            price="3600",
            newClientOrderId="web-1",
        )
        assert placed["status"] == "NEW"
        trade = _ctl(sim, "fill_order", symbol="ETHUSDT", client_order_id="web-1", quantity="0.25")
        assert trade["qty"] == "0.25000000" and trade["isMaker"] is True
        assert _ctl(sim, "cancel_external_order", symbol="ETHUSDT", client_order_id="web-1")["status"] == "CANCELED"
        assert _ctl(sim, "credit", asset="BNB", amount="1.5")["free"] == "51.50000000"
        fid = _ctl(sim, "add_fault", spec={"kind": "latency", "target": "GET /api/v3/ping", "latency_ms": 1})
        assert _ctl(sim, "remove_fault", fault_id=fid) is True
        ledger = requests.get(f"{sim.urls.rest}/_sim/ledger", timeout=5).json()["result"]
        assert ledger["orders"][0]["external"] is True and len(ledger["trades"]) == 1
        assert requests.post(f"{sim.urls.rest}/_sim/nope", timeout=5).status_code == 404
        bad = requests.post(f"{sim.urls.rest}/_sim/fill_order", json={"symbol": "ETHUSDT", "order_id": 1}, timeout=5)
        assert bad.status_code == 400


def _session(seed: int) -> tuple[list[Any], Any]:
    clock = ManualClock(1_767_225_600_000)
    with Simulator(SimConfig(seed=seed, tick_volume_multiplier=0.5, volatility=0.002), clock=clock) as sim:
        acc = sim.accounts[0]
        for i in range(6):
            params = {
                "symbol": "BTCUSDT",
                "side": "BUY" if i % 2 else "SELL",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.01",
                "price": str(65000 + (i - 3) * 50),
            }
            assert _signed(sim, "POST", "/api/v3/order", params, acc.api_key, acc.secret, ts=clock.now).ok
        _signed(
            sim,
            "POST",
            "/api/v3/order",
            {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quoteOrderQty": "700"},
            acc.api_key,
            acc.secret,
            ts=clock.now,
        )
        sim.control.step_market(100)
        ledger = sim.control.ledger()
        return ledger["trades"], sim.control.step_market(0)


def test_same_seed_same_requests_same_fills_and_prices() -> None:
    first, second, other = _session(11), _session(11), _session(12)
    assert first == second
    assert len(first[0]) > 2
    assert first[1] != other[1]


def test_restart_and_malformed_ws_requests() -> None:
    import asyncio

    from tests.sim._wsclient import connect, recv_json, request

    sim = Simulator(SimConfig())
    for _ in range(2):
        sim.start()
        try:
            assert requests.get(sim.urls.rest + "/api/v3/ping", timeout=5).json() == {}

            async def main() -> None:
                async with connect(sim.urls.ws_api) as ws:
                    await ws.send("not json")
                    assert (await recv_json(ws))["error"]["code"] == -1100
                    bad = await request(ws, {"id": 1, "method": "session.subscriptions", "params": [1]})
                    assert bad["error"]["code"] == -1102
                    unknown = await request(ws, {"id": 2, "method": "order.place", "params": {}})
                    assert (unknown["status"], unknown["error"]["code"]) == (400, -1020)
                    assert (await request(ws, {"id": 3, "method": "time"}))["result"]["serverTime"] > 0

            asyncio.run(main())
        finally:
            sim.stop()
