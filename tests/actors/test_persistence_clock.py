"""Persistence stamps the records it makes itself with the injected clock, not the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from actors.persistence import PersistenceCore, PersistenceSettings, start_persistence
from db import connect, find_errors
from engine.clock import ManualClock
from tests.db import _records as rec

GET = 30  # seconds: generous upper bound for any future in these tests
# Far from the wall clock, and with milliseconds, so a wall-clock stamp or a truncated one cannot pass.
START_MS = 1_500_000_000_000


def _manual_clock() -> ManualClock:
    clock = ManualClock(START_MS)
    clock.advance(1_234)
    return clock


def test_the_core_stamps_a_rejected_record_error_with_its_clock(sqlite_url: str, tmp_path: Path) -> None:
    # Before: the "persist" error record of a refused row carried utc_now(), the wall clock's time.
    clock = _manual_clock()
    core = PersistenceCore(sqlite_url, tmp_path / "spool.jsonl", settings=PersistenceSettings(), clock=clock)
    core.start()
    core.accept(rec.order("a", exchange_order_id=9))
    core.flush()
    core.accept(rec.order("b", exchange_order_id=9))  # the same exchange order id: the database refuses it
    core.flush()
    core.flush()  # commits the "persist" error record
    [err] = core.query(find_errors, operation="persist")
    core.stop()
    assert err.time == datetime.fromtimestamp(1_500_000_001.234, tz=UTC) == clock.now()


def test_the_actor_passes_its_clock_to_the_core(sqlite_url: str, tmp_path: Path) -> None:
    clock = _manual_clock()
    handle = start_persistence(sqlite_url, tmp_path / "spool.jsonl", clock=clock)
    handle.save(rec.order("a", exchange_order_id=9))
    handle.save(rec.order("b", exchange_order_id=9))
    handle.flush().get(timeout=GET)
    handle.flush().get(timeout=GET)  # commits the "persist" error record
    handle.stop()
    reader = connect(sqlite_url)
    try:
        [err] = find_errors(reader, operation="persist")
    finally:
        reader.close()
    assert err.time == clock.now()


def test_the_engine_gives_persistence_its_own_clock(tmp_path: Path) -> None:
    # Before: the root started persistence without the engine's clock, so a ManualClock engine stamped today.
    from engine.api import Engine
    from engine.config import Config
    from sim import SimConfig, Simulator

    clock = _manual_clock()
    config = Config.model_validate(
        {"stream": {"user_data": False, "market_data": False}, "exchange": {"pair_whitelist": ["BTC/USDT"]}}
    )
    url = f"sqlite:///{tmp_path}/e.sqlite3"
    with Simulator(SimConfig(seed=3, symbols=["BTCUSDT"])) as sim:
        engine = Engine.start(config, clock=clock, sim=sim, database_url=url, spool_path=tmp_path / "spool.jsonl")
        try:
            store = engine._root.proxy().store().get(timeout=GET)
            store.save(rec.order("a", exchange_order_id=9))
            store.save(rec.order("b", exchange_order_id=9))  # refused: the same exchange order id
            store.flush().get(timeout=GET)
            store.flush().get(timeout=GET)  # commits the "persist" error record
        finally:
            engine.stop(graceful=False)
    reader = connect(url)
    try:
        [err] = find_errors(reader, operation="persist")
    finally:
        reader.close()
    assert err.time == clock.now()
