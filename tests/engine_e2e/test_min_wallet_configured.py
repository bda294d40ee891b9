"""Found by a mutation audit (every test used the default minimum): the configured execution.min_wallet_btc (not the
0.0001 default) is what intake enforces."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.api import Engine, Refusal, RefusalReason
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from sim import AccountSpec, SimConfig, Simulator
from tests.engine_e2e._engine_sim_helpers import NO_STREAMS, PAIR, _sim_orders


def test_a_configured_min_wallet_above_the_wallet_refuses(tmp_path: Path) -> None:
    # 1,000 USDT at 60,000 ≈ 0.0167 BTC: well above the 0.0001 default, below the configured 0.5 BTC
    acct = AccountSpec(balances={"USDT": Decimal(1000)})
    config = SimConfig(seed=3, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, accounts=[acct])
    with Simulator(config) as simulator:
        engine = Engine.start(
            Config.model_validate(
                {
                    "stream": NO_STREAMS,
                    "exchange": {"pair_whitelist": ["BTC/USDT"]},
                    "execution": {"min_wallet_btc": "0.5"},
                }
            ),
            clock=ManualClock(SystemClock().now_ms()),
            sim=simulator,
            database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
            spool_path=tmp_path / "spool.jsonl",
        )
        try:
            outcome = engine.place_order(PAIR, "buy", "0.001", "59950").result(timeout=20)
            assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.WALLET_BELOW_MINIMUM, outcome
            assert outcome.details["min_wallet_btc"] == "0.5"
            assert _sim_orders(simulator) == []
        finally:
            engine.stop(graceful=False)
