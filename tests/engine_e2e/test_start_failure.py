"""A start that fails leaves nothing running: the actors the root started are stopped (pykka stops neither its
children nor calls `on_stop` when `on_start` raises), and a database whose schema is newer than this engine
knows is refused before anything is written to it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pykka
import pytest

from db import LATEST_VERSION, connect
from engine.api import Engine
from engine.config import Config
from sim import SimConfig, Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=11, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as simulator:
        yield simulator


def _newer_schema(path: Path) -> None:
    connect(f"sqlite:///{path}").close()  # migrated to this engine's latest
    with sqlite3.connect(path) as raw:
        raw.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, 'from a newer engine', "
            "'2026-11-26 00:00:00.000000')",
            (LATEST_VERSION + 1,),
        )


def test_an_engine_refused_by_a_newer_schema_starts_nothing_and_leaves_no_actor(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    _newer_schema(path)
    before = set(pykka.ActorRegistry.get_all())
    config = Config.model_validate(
        {"stream": {"user_data": False, "market_data": False}, "exchange": {"pair_whitelist": ["BTC/USDT"]}}
    )
    with pytest.raises(RuntimeError, match="failed to start"):
        Engine.start(config, sim=sim, database_url=f"sqlite:///{path}", spool_path=tmp_path / "spool.jsonl")
    assert set(pykka.ActorRegistry.get_all()) - before == set()  # bus, persistence, gateway: all stopped
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT COUNT(*) FROM orders").fetchone() == (0,)
        assert raw.execute("SELECT MAX(version) FROM schema_version").fetchone() == (LATEST_VERSION + 1,)
    assert not (tmp_path / "spool.jsonl").exists() or (tmp_path / "spool.jsonl").stat().st_size == 0


def test_a_start_given_up_on_stops_the_actors_the_root_goes_on_starting(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The caller gave up on the barrier (a timeout, Ctrl+C) while the root was still recovering: the root went on
    # starting persistence, gateway and pair actors, on non-daemon threads, with the ticker stopped and the
    # database lock released. They are stopped now, before the caller hears the failure.
    from actors._ticker import Ticker
    from actors.root import RootActor

    gate = threading.Event()
    recover = RootActor._recover

    def slow_recover(self: RootActor) -> None:
        assert gate.wait(30), "the start was not given up on"
        recover(self)

    stop = Ticker.stop

    def ticker_stop(self: Ticker) -> None:
        stop(self)
        gate.set()  # the caller is cleaning up: let the root finish its start (and then take the stop)

    monkeypatch.setattr(RootActor, "_recover", slow_recover)
    monkeypatch.setattr(Ticker, "stop", ticker_stop)
    monkeypatch.setattr("engine.api._engine._START_WAIT_S", 0.5)
    before = set(pykka.ActorRegistry.get_all())
    config = Config.model_validate(
        {"stream": {"user_data": False, "market_data": False}, "exchange": {"pair_whitelist": ["BTC/USDT"]}}
    )
    with pytest.raises(pykka.Timeout):
        Engine.start(config, sim=sim, database_url=f"sqlite:///{tmp_path}/e.sqlite3", spool_path=tmp_path / "s.jsonl")
    assert {ref for ref in set(pykka.ActorRegistry.get_all()) - before if ref.is_alive()} == set()
