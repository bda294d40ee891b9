"""A running engine on PostgreSQL keeps its instance lock: a lost lock session is replaced and the lock taken
again; when another session got the lock meanwhile, the engine halts new orders (two engines on one database
each take the other's requests for a crash's leftovers)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import engine.api._lockwatch as lockwatch
from db._lockwatch import KEY_SQL
from engine.api import Engine, Refusal, RefusalReason
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from sim import SimConfig, Simulator
from tests.pg_fixtures import lock_holder

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


@pytest.fixture
def engine(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    # The test runs each check itself (`check()`, what the watch does each period): the watch stays idle.
    monkeypatch.setattr(lockwatch, "LOCK_CHECK_S", 3600.0)
    monkeypatch.setattr(lockwatch, "LOCK_RETAKE_WAIT_S", 0.5)
    config = Config.model_validate(
        {"stream": {"user_data": False, "market_data": False}, "exchange": {"pair_whitelist": ["BTC/USDT"]}}
    )
    sim_config = SimConfig(seed=3, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})
    with Simulator(sim_config) as sim:
        started = Engine.start(
            config,
            clock=ManualClock(SystemClock().now_ms()),
            sim=sim,
            database_url=pg_url,
            spool_path=tmp_path / "spool.jsonl",
        )
        try:
            yield started
        finally:
            started.stop(graceful=False)


def test_a_terminated_lock_session_is_replaced_and_the_engine_trades_on(engine: Engine, pg_admin: Any) -> None:
    first = lock_holder(pg_admin)
    assert first is not None, "nobody holds the lock"
    with pg_admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (first,))

    assert engine._db_lock.check() is True  # type: ignore[union-attr]  # one watch period, now
    assert lock_holder(pg_admin) != first
    engine.health()  # a barrier through the root
    assert not engine.halted


def test_a_lock_another_session_took_halts_new_orders(engine: Engine, pg_admin: Any) -> None:
    with pg_admin.cursor() as cur:
        # Terminated and taken in one statement: the other session is first in line for the lock.
        cur.execute(f"SELECT pg_terminate_backend(%s), pg_advisory_lock({KEY_SQL})", (lock_holder(pg_admin),))

    assert engine._db_lock.check() is False  # type: ignore[union-attr]  # one watch period, now
    engine.health()  # the root took the halt (told) before it answers this
    assert engine.halted
    outcome = engine.place_order("BTC/USDT", "buy", "0.001", "59000").result(timeout=20)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.HALTED
    assert "database lock lost" in engine.health()["halt_reason"]
