"""The daemon killed with SIGKILL while an order rests, then started again: it recovers before taking orders.

The exchange must outlive the daemon, so the simulator runs in the test and the daemon trades on it as on a
live venue (`exchange.name = "binance"` with the simulator's URLs and key, dry run off).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from engine.service import ApiClient
from sim import AccountSpec, SimConfig, Simulator
from tests.service._proc import DaemonProcess

KEY = "K" * 64
SECRET = "s3cr3t" * 10 + "wxyz"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    account = AccountSpec(
        name="main", api_key=KEY, secret=SECRET, balances={"BTC": Decimal(5), "USDT": Decimal(500_000)}
    )
    config = SimConfig(seed=31, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, accounts=[account])
    with Simulator(config) as simulator:
        yield simulator


def _live_on(sim: Simulator) -> dict[str, str]:
    return {
        "FREQTRADE__EXCHANGE__NAME": "binance",
        "FREQTRADE__EXCHANGE__REST_URL": sim.urls.rest,
        "FREQTRADE__EXCHANGE__WS_API_URL": sim.urls.ws_api,
        "FREQTRADE__EXCHANGE__STREAM_URL": sim.urls.stream,
        "FREQTRADE__EXCHANGE__KEY": KEY,
        "FREQTRADE__EXCHANGE__SECRET": SECRET,
        "FREQTRADE__EXCHANGE__PAIR_WHITELIST": "BTC/USDT",
        "FREQTRADE__EXECUTION__DRY_RUN": "false",
        "FREQTRADE__EXECUTION__ON_SHUTDOWN": "keep",
    }


def test_kill_9_then_restart_recovers_the_resting_order_before_taking_new_ones(sim: Simulator, tmp_path: Path) -> None:
    first = DaemonProcess(tmp_path, **_live_on(sim))
    try:
        client = ApiClient(first.url, first.token)
        status, placed = client.request(
            "POST", "/orders",
            {"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "price": "59000", "limit_timeout": "600",
             "idempotency_key": "survives-kill-9"},
        )  # fmt: skip
        assert status == 201, placed
        cid = placed["order"]["client_order_id"]
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.wait()
    assert first.proc.returncode == -signal.SIGKILL

    second = DaemonProcess(tmp_path, **_live_on(sim))
    try:
        assert "crash recovery: 1 unfinished request(s) resumed" in second.out.text
        client = ApiClient(second.url, second.token)
        status, order = client.request("GET", f"/orders/BTC/USDT/{cid}")
        assert status == 200 and order["order"]["status"] == "open", order
        # the same idempotency key after the restart: the same order, not a second one
        again = {
            "pair": "BTC/USDT",
            "side": "buy",
            "amount": "0.01",
            "price": "59000",
            "idempotency_key": "survives-kill-9",
        }
        status, replay = client.request("POST", "/orders", again)
        assert replay["order"]["client_order_id"] == cid, replay
        status, health = client.request("GET", "/health")
        assert health["recovery"]["requests_resumed"] == 1
        second.signal(signal.SIGTERM)
        assert second.wait() == 0
    finally:
        second.kill()
    engine_orders = [o for o in sim.control.ledger()["orders"] if str(o["clientOrderId"]).startswith("bx-")]
    assert [o["clientOrderId"] for o in engine_orders] == [cid]  # one order on the exchange, never two


def test_orders_kept_on_an_exchange_the_daemon_did_not_start_are_not_said_to_end(
    sim: Simulator, tmp_path: Path
) -> None:
    # The simulator runs in the test and outlives the daemon, as a real venue does: a kept order stays open there
    # (the warning and `ended with the simulator` are for a simulated exchange the daemon started itself).
    daemon = DaemonProcess(tmp_path, **_live_on(sim))
    try:
        client = ApiClient(daemon.url, daemon.token)
        order = {"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "price": "59000", "limit_timeout": "600"}
        status, placed = client.request("POST", "/orders", order)
        assert status == 201, placed
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.err.text[-3000:]
    finally:
        daemon.kill()
    assert "shutdown complete: on_shutdown=keep, canceled=0, left open=1\n" in daemon.out.text
    assert "end with it" not in daemon.err.text
    cid = placed["order"]["client_order_id"]
    assert [o["status"] for o in sim.control.ledger()["orders"] if o["clientOrderId"] == cid] == ["NEW"]


def test_the_recovery_line_says_what_pairs_no_longer_whitelisted_hold() -> None:
    # It said "0 unfinished request(s) resumed, 0 order(s) being reconciled" while the engine tracked a request and
    # an order of a pair removed from the whitelist.
    from engine.service._daemon import _outside_whitelist

    assert _outside_whitelist({"requests_resumed": 0}) == ""
    line = _outside_whitelist({"outside_whitelist_requests": 1, "outside_whitelist_orders": 1})
    assert line == "; 1 request(s) and 1 order(s) of pairs no longer whitelisted, tracked to their end"
