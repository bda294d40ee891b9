"""The whole engine on Binance.US (REST listenKeys, unwrapped events) against the simulator in binanceus mode."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from engine.api import Accepted, EventKind
from sim import SimConfig, Simulator
from tests.engine_e2e._stack import engine_on, settle
from tests.engine_e2e.test_stream_faults_engine import Reconciliations
from tests.stream._helpers import on_sim_loop


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(seed=5, exchange_mode="binanceus", symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def reconciled() -> Iterator[Reconciliations]:
    """The root's reconciliation log lines, waitable."""
    rec = Reconciliations()
    sink_id = logger.add(rec.sink, level="INFO", format="{message}")
    try:
        yield rec
    finally:
        logger.remove(sink_id)


def _config(sim: Simulator) -> dict[str, Any]:
    account = sim.accounts[0]
    return {
        "exchange": {
            "name": "binanceus",
            "rest_url": sim.urls.rest,
            "stream_url": sim.urls.stream,
            "key": account.api_key,
            "secret": account.secret,
            "pair_whitelist": ["BTC/USDT"],
        },
        "execution": {"dry_run": False, "limit_timeout_s": "3600"},
        "stream": {"user_data": True, "market_data": False},
        "logging": {"level": "WARNING"},
    }


def test_an_expired_listen_key_is_replaced_and_the_missed_fill_reconciled(
    sim: Simulator, tmp_path: Path, reconciled: Reconciliations
) -> None:
    """Binance.US pushes listenKeyExpired and closes the stream; a fill on the expired key is lost on the wire. The
    engine takes a new key and stream, and the gap's reconciliation finds the fill (order status, myTrades)."""
    with engine_on(sim, tmp_path, _config(sim), subscriptions=1) as (engine, events):
        reconciled.wait("first subscription")
        placed = engine.place_order("BTC/USDT", "buy", "0.01", "59000", idempotency_key="us-expiry").result(30)
        assert isinstance(placed, Accepted), placed
        keys = list(sim.core.listen_keys)

        async def expire_then_fill() -> int:
            # In one go on the simulator's loop: the fill lands while no key is live, so it goes out on no stream
            # and only the reconciliation the expiry triggers can bring it.
            ops = sim.control.ops
            told = await ops.expire_listen_keys(None)
            await ops.fill_order("BTCUSDT", client_order_id=placed.order.client_order_id, quantity="0.004")
            return told

        assert on_sim_loop(sim, expire_then_fill()) == 1
        reconciled.wait("listenKeyExpired")
        events.wait(lambda r: r.count(EventKind.FILL) == 1, what="the missed fill, reconciled")
        assert sim.control.wait_subscriptions(1, within_s=20)
        assert list(sim.core.listen_keys) != keys
        sim.control.fill_order("BTCUSDT", client_order_id=placed.order.client_order_id, quantity="0.006")
        events.wait(lambda r: r.count(EventKind.FILL) == 2, what="the next fill, on the new key's stream")
        settle(engine)
        assert engine.health()["streams"]["user"]["state"] == "connected"
        engine.stop()
