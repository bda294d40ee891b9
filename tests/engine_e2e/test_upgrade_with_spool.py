"""An upgrade that finds an engine's first requests still in the spool keeps the client order ids they were made with.

Found by a diff review: migration 11 looked only at the database to decide whether its ids get a tag. The spool is
replayed after the migration, so a schema-10 database that was empty while its engine's first orders waited in the
spool (a database outage) got a tag; the replayed request's id carried none, and the same idempotency key sent
again built the tagged id, found nothing and placed a second order. `migrate` is told when the spool holds
requests, and then draws no namespace and no tag.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import actors.persistence._actor as persistence_actor
from actors.persistence._spool import Spool
from db import _migrations, connect, find_fills, find_orders, find_trades, id_tag, migrate, request_of
from engine.api import Accepted, Engine
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from sim import SimConfig, Simulator
from tests.engine_e2e._engine_sim_helpers import settle

PAIR = "BTC/USDT"


def _start(sim: Simulator, url: str, spool: Path, clock: ManualClock) -> Engine:
    config = Config.model_validate(
        {"stream": {"user_data": False, "market_data": False}, "exchange": {"pair_whitelist": [PAIR]}}
    )
    return Engine.start(config, clock=clock, sim=sim, database_url=url, spool_path=spool)


def _move_to_spool(url: str, request_id: str, spool: Path) -> None:
    """What the database had not taken yet when the old engine stopped: its request and records, spooled."""
    handle = connect(url, apply_migrations=False)
    try:
        records: list[Any] = [request_of(handle, request_id), *find_orders(handle), *find_fills(handle),
                              *find_trades(handle)]  # fmt: skip
        for table in ("fills", "trades", "orders", "requests"):
            handle.execute_sql(f'DELETE FROM "{table}"')
    finally:
        handle.close()
    out = Spool(spool)
    out.append(records)
    out.sync()
    out.close()


def test_a_key_of_a_spooled_request_finds_its_order_after_the_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, spool = f"sqlite:///{tmp_path}/e.sqlite3", tmp_path / "spool.jsonl"
    with Simulator(SimConfig(seed=5, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as sim:
        with monkeypatch.context() as old_engine:  # an engine of schema 10: namespaced, untagged ids
            old_engine.setattr(_migrations, "MIGRATIONS", _migrations.MIGRATIONS[:10])
            old_engine.setattr(_migrations, "LATEST_VERSION", 10)
            old_engine.setattr(persistence_actor, "id_tag", lambda _db: "")
            clock = ManualClock(SystemClock().now_ms())
            first = _start(sim, url, tmp_path / "first.spool", clock)
            try:
                old = first.place_order(PAIR, "buy", "0.001", order_type="market", idempotency_key="mkt-1").result(20)
                assert isinstance(old, Accepted)
                settle(first)
            finally:
                first.stop()
        _move_to_spool(url, old.order.request_id, spool)
        second = _start(sim, url, spool, ManualClock(clock.now_ms()))
        try:
            again = second.place_order(PAIR, "buy", "0.001", order_type="market", idempotency_key="mkt-1").result(20)
            settle(second)
        finally:
            second.stop(graceful=False)
        orders_at_exchange = len(sim.control.ledger()["orders"])
    handle = connect(url)
    try:
        assert id_tag(handle) == ""  # the replayed request's ids carry none
    finally:
        handle.close()
    assert isinstance(again, Accepted) and again.order.client_order_id == old.order.client_order_id
    assert orders_at_exchange == 1, "the key sent again placed a second order"


def test_migrating_an_empty_database_with_requests_in_the_spool_draws_no_namespace_or_tag(tmp_path: Path) -> None:
    handle = connect(f"sqlite:///{tmp_path}/x.sqlite3", apply_migrations=False)
    try:
        migrate(handle, spool_holds_requests=True)
        from db import id_namespace

        assert (id_namespace(handle), id_tag(handle)) == ("", "")
    finally:
        handle.close()
