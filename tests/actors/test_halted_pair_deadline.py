"""A pair halted past the restart budget still ends its limits at their deadline: the root runs its book's plan
timers and sends the cancel (a cancel is not a new order), and the fallback the plan then wants is refused.

Against the simulator with a manual clock; every wait is an ask through the root's inbox or the gateway's idle
barrier, never a sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.api import Accepted, Engine
from sim import Simulator
from tests.actors._crashes import BTC, exhaust_restart_budget, manual_engine, two_pair_sim


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with two_pair_sim() as simulator:
        yield simulator


@pytest.fixture
def engine(sim: Simulator, tmp_path: Path) -> Iterator[Engine]:
    started = manual_engine(sim, tmp_path, limit_timeout_s="60")
    yield started
    started.stop(graceful=False)


def _btc_orders(sim: Simulator) -> list[tuple[str, str]]:
    return [(str(o["type"]), str(o["status"])) for o in sim.control.ledger()["orders"] if o["symbol"] == "BTCUSDT"]


def test_a_halted_pairs_limit_is_canceled_at_its_deadline_without_a_fallback(engine: Engine, sim: Simulator) -> None:
    placed = engine.place_order(BTC, "buy", "0.01", "59950").result(timeout=20)
    assert isinstance(placed, Accepted), placed
    exhaust_restart_budget(engine, BTC)
    root = engine._root.proxy()
    gateway = root.gateway.get(timeout=10)

    engine.ticker.advance(59_000)
    root.pair_refs().get(timeout=10)  # barrier: whatever the timers told the root was handled before this
    assert gateway.idle(30)
    root.pair_refs().get(timeout=10)
    assert _btc_orders(sim) == [("LIMIT", "NEW")]  # not before its deadline

    engine.ticker.advance(1_000)
    root.pair_refs().get(timeout=10)  # barrier: the deadline's timer was handled (the cancel submitted)
    assert gateway.idle(30)
    root.pair_refs().get(timeout=10)  # barrier: the cancel's answer was applied by the root's tracking-only book
    assert _btc_orders(sim) == [("LIMIT", "CANCELED")]  # and no market order after it
    assert root.tracked_open_orders(BTC).get(timeout=10) == []
    summary = engine.stop()
    assert summary["open"] == 0
