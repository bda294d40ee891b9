"""The halted state has causes, each set and lifted on its own: the database coming back lifts only the
spool-full halt, never a stop-trading one (bad key, ban) nor an exhausted restart budget."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

import actors.root as root_module
from actors.persistence import HealthReport
from actors.persistence._types import Health
from actors.root import EngineState
from engine.api import Accepted, Engine, Refusal, RefusalReason
from engine.exchange._errors import AuthFailed
from sim import SimConfig, Simulator
from tests.actors._crashes import exhaust_restart_budget
from tests.engine_e2e._stack import engine_on

PAIR = "BTC/USDT"
CONFIG = {"stream": {"user_data": False, "market_data": False}, "exchange": {"pair_whitelist": [PAIR]}}
SPOOL_FULL = HealthReport(Health.SPOOL_FULL, False, "disk", 10)
DB_OK = HealthReport(Health.OK, True, "", 0)


def test_halted_while_any_cause_remains() -> None:
    stop_trading, database = root_module.HALT_STOP_TRADING, root_module.HALT_DATABASE
    restarts = root_module.HALT_RESTARTS
    state = EngineState()
    state.halt(stop_trading, "AuthFailed: bad key")
    ctx = state.halt(database, "spool full")
    assert ctx.halted and ctx.halt_reason == "AuthFailed: bad key; spool full"
    ctx = state.lift(database)
    assert ctx.halted and ctx.halt_reason == "AuthFailed: bad key"
    assert state.halt_causes() == {stop_trading}
    ctx = state.lift(restarts)  # not a cause: nothing changes
    assert ctx.halted
    ctx = state.lift(stop_trading)
    assert not ctx.halted and ctx.halt_reason == ""


def test_the_halted_flag_cannot_be_set_around_the_causes() -> None:
    with pytest.raises(ValueError, match="halt"):
        EngineState().update(halted=False)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=1, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as simulator:
        yield simulator


def _place(engine: Engine) -> object:
    return engine.place_order(PAIR, "buy", "0.001", "59000").result(timeout=20)


def test_the_database_coming_back_does_not_lift_a_stop_trading_halt(sim: Simulator, tmp_path: Path) -> None:
    with engine_on(sim, tmp_path, CONFIG) as (engine, _):
        root = engine._root.proxy()
        root.on_critical(AuthFailed("Invalid API-key, IP, or permissions for action", code=-2015)).get(timeout=10)
        root.on_persistence_health(SPOOL_FULL).get(timeout=10)
        root.on_persistence_health(DB_OK).get(timeout=10)
        out = _place(engine)
        assert isinstance(out, Refusal) and out.reason is RefusalReason.HALTED, out
        health = engine.health()
        assert health["halted"] and health["halt_reason"].startswith("AuthFailed")


def test_the_database_coming_back_does_not_lift_a_restart_budget_halt(sim: Simulator, tmp_path: Path) -> None:
    with engine_on(sim, tmp_path, CONFIG) as (engine, _):
        root = engine._root.proxy()
        exhaust_restart_budget(engine, PAIR)
        root.on_persistence_health(SPOOL_FULL).get(timeout=10)
        root.on_persistence_health(DB_OK).get(timeout=10)
        assert engine.halted and engine.health()["halt_reason"] == "restart budget exhausted"


def test_the_database_coming_back_lifts_its_own_halt(sim: Simulator, tmp_path: Path) -> None:
    with engine_on(sim, tmp_path, CONFIG) as (engine, _):
        root = engine._root.proxy()
        root.on_persistence_health(SPOOL_FULL).get(timeout=10)
        refused = _place(engine)
        assert isinstance(refused, Refusal) and refused.reason is RefusalReason.HALTED, refused
        root.on_persistence_health(DB_OK).get(timeout=10)
        assert not engine.halted
        assert isinstance(_place(engine), Accepted)


def test_a_persistence_actor_that_fails_halts_new_orders(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unexpected error kills the persistence actor: nothing more would be stored (fills of live orders
    # included). The root hears of it (health `failed`) and stops taking new orders, with an alert.
    import threading

    from actors.persistence import PersistenceCore

    handled = threading.Event()
    original = root_module.RootActor.on_persistence_health

    def on_health(self: root_module.RootActor, report: HealthReport) -> None:
        original(self, report)
        if report.health is Health.FAILED:
            handled.set()

    monkeypatch.setattr(root_module.RootActor, "on_persistence_health", on_health)
    with engine_on(sim, tmp_path, CONFIG) as (engine, _):
        assert isinstance(_place(engine), Accepted)

        def broken_tick(self: PersistenceCore) -> None:
            raise RuntimeError("a bug in persistence (test)")

        monkeypatch.setattr(PersistenceCore, "tick", broken_tick)
        store = engine._root.proxy().store().get(timeout=10)
        store.tick()  # a tell: the error kills the actor
        assert handled.wait(10)
        out = _place(engine)
        assert isinstance(out, Refusal) and out.reason is RefusalReason.HALTED, out
        assert engine.health()["halt_reason"] == root_module._PERSISTENCE_FAILED
