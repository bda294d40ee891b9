"""Crashing pair actors for the supervision tests: the real crash path (`on_failure` → `child_failed`); and the
engine those tests crash (BTC and ETH, no streams, a manual clock: only what a test does moves anything)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.api import Engine
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.domain import Pair
from sim import SimConfig, Simulator

__all__ = ["BTC", "ETH", "exhaust_restart_budget", "manual_engine", "two_pair_sim"]

BTC, ETH = Pair("BTC/USDT"), Pair("ETH/USDT")


def two_pair_sim() -> Simulator:
    """The simulator those engines trade on (not started: use it as a context manager)."""
    prices = {"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    return Simulator(SimConfig(seed=11, symbols=["BTCUSDT", "ETHUSDT"], start_prices=prices))


def manual_engine(sim: Simulator, tmp_path: Path, **execution: str) -> Engine:
    """An engine on `sim` trading BTC and ETH with no streams and a manual clock; `execution` overrides
    (limit timeout 600 s unless given)."""
    config = Config.model_validate(
        {
            "stream": {"user_data": False, "market_data": False},
            "exchange": {"pair_whitelist": [BTC, ETH]},
            "execution": {"limit_timeout_s": "600", **execution},
        }
    )
    return Engine.start(
        config,
        clock=ManualClock(SystemClock().now_ms()),
        sim=sim,
        database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
        spool_path=tmp_path / "spool.jsonl",
    )


def exhaust_restart_budget(engine: Engine, pair: Pair | str, budget: int = 3) -> None:
    """Crash `pair`'s actor until the root halts (`budget` restarts, then one more crash)."""

    def exhausted() -> bool:
        # By its reason: another cause (a full spool) may have halted the engine already.
        return "restart budget exhausted" in engine._state.intake().halt_reason

    for _ in range(budget + 1):
        old = engine._routing.get(Pair(pair))
        old.crash.defer()
        for _ in range(10_000):  # each round is a barrier through the root's inbox, not a sleep
            engine._root.proxy().pair_refs().get(timeout=10)
            if engine._routing.get(Pair(pair)) is not old or exhausted():
                break
    assert exhausted() and engine.halted, "the restart budget was not exhausted"
    assert not engine._routing.get(Pair(pair)).actor_ref.is_alive()
