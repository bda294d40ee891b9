"""A host clock running fast of the exchange's: the user data stream still subscribes and delivers fills (real
UBWA against the simulator, whose clock runs 2 s behind this host's)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.api import Accepted, Engine, EventKind
from engine.clock import SystemClock
from engine.config import Config
from sim import SimConfig, Simulator
from sim._core import wall_clock_ms
from tests.engine_e2e.test_engine_sim import Events

PAIR = "BTC/USDT"
SKEW_MS = 2_000
"""The host is this far ahead of the exchange: past the 1 s Binance lets a timestamp run ahead (-1021)."""


def _exchange_clock() -> int:
    return wall_clock_ms() - SKEW_MS


def test_a_host_clock_two_seconds_fast_still_gets_its_fills_over_the_user_stream(tmp_path: Path) -> None:
    config = SimConfig(seed=23, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})
    with Simulator(config, clock=_exchange_clock) as sim:
        engine_config = Config.model_validate(
            {"exchange": {"pair_whitelist": [PAIR]}, "execution": {"limit_timeout_s": "600"},
             "stream": {"market_data": False, "reconcile_interval_s": "3600"}}
        )  # fmt: skip
        events = Events()
        eng = Engine.start(engine_config, clock=SystemClock(), sim=sim, database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                           spool_path=tmp_path / "spool.jsonl", listeners=[events])  # fmt: skip
        try:
            # Signed with the host's raw time, the subscription was refused (-1021) three times and went fatal.
            assert sim.control.wait_subscriptions(1, within_s=20), "the user data stream never subscribed"
            outcome = eng.place_order(PAIR, "buy", "0.01", "59900").result(timeout=20)
            assert isinstance(outcome, Accepted), outcome
            sim.control.fill_order("BTCUSDT", client_order_id=outcome.order.client_order_id)
            [fill] = events.wait_for(EventKind.FILL)  # over the stream: reconciliation is an hour away
            assert fill.fill is not None and fill.fill.quantity == Decimal("0.01")
            assert eng.health()["streams"]["user"]["state"] == "connected"
        finally:
            eng.stop(graceful=False)
