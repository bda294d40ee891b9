"""A running engine on PostgreSQL keeps its instance lock: a lost lock session is replaced and the lock taken
again; when another session got the lock meanwhile, the engine halts new orders (two engines on one database
each take the other's requests for a crash's leftovers)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
import pytest

import engine.api._lockwatch as lockwatch
from engine.api import Engine, Refusal, RefusalReason
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from sim import SimConfig, Simulator

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

_KEY_SQL = "hashtextextended('bexec-engine:' || current_schema(), 0)"


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


@pytest.fixture
def admin(pg_url: str) -> Iterator[Any]:
    conn = psycopg2.connect(pg_url, connect_timeout=5)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def _holder(admin: Any) -> int:
    with admin.cursor() as cur:
        cur.execute(
            "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            f"AND (l.classid::bigint << 32 | l.objid::bigint) = {_KEY_SQL}"
        )
        row = cur.fetchone()
    assert row is not None, "nobody holds the lock"
    return int(row[0])


def test_a_terminated_lock_session_is_replaced_and_the_engine_trades_on(engine: Engine, admin: Any) -> None:
    first = _holder(admin)
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (first,))

    assert engine._db_lock.check() is True  # type: ignore[union-attr]  # one watch period, now
    assert _holder(admin) != first
    engine.health()  # a barrier through the root
    assert not engine.halted


def test_a_lock_another_session_took_halts_new_orders(engine: Engine, admin: Any) -> None:
    with admin.cursor() as cur:
        # Terminated and taken in one statement: the other session is first in line for the lock.
        cur.execute(f"SELECT pg_terminate_backend(%s), pg_advisory_lock({_KEY_SQL})", (_holder(admin),))

    assert engine._db_lock.check() is False  # type: ignore[union-attr]  # one watch period, now
    engine.health()  # the root took the halt (told) before it answers this
    assert engine.halted
    outcome = engine.place_order("BTC/USDT", "buy", "0.001", "59000").result(timeout=20)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.HALTED
    assert "database lock lost" in engine.health()["halt_reason"]
