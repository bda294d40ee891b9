"""An upgrade that finds an engine's first requests still in the spool keeps the client order ids they were made with.

Found by a diff review: migration 11 looked only at the database to decide whether its ids get a tag. The spool is
replayed after the migration, so a schema-10 database that was empty while its engine's first orders waited in the
spool (a database outage) got a tag; the replayed request's id carried none, and the same idempotency key sent
again built the tagged id, found nothing and placed a second order. `migrate` is told when the spool holds
requests, and then draws no namespace and no tag.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import actors.persistence._actor as persistence_actor
from actors.persistence._spool import Spool
from db import (
    SpoolIds,
    _migrations,
    connect,
    find_fills,
    find_orders,
    find_trades,
    id_namespace,
    id_tag,
    migrate,
    request_of,
)
from engine.api import Accepted, Engine
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.service._daemon import _leftover_open_orders
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


def _schema_10_with_todays_order_columns() -> tuple[_migrations.Migration, ...]:
    # Today's code stands in for the schema-10 engine: it reads and writes the columns later migrations add to
    # `orders` (12: the amend), so the simulated old schema has them; the upgrade then leaves them be.
    ten, twelve = _migrations.MIGRATIONS[9], _migrations.MIGRATIONS[11]

    def apply(db: Any, migrator: Any) -> None:
        ten.apply(db, migrator)
        twelve.apply(db, migrator)

    return (*_migrations.MIGRATIONS[:9], dataclasses.replace(ten, apply=apply))


def _todays_without_the_order_columns() -> tuple[_migrations.Migration, ...]:
    twelve = _migrations.MIGRATIONS[11]
    assert twelve.version == 12
    return (*_migrations.MIGRATIONS[:11], dataclasses.replace(twelve, apply=lambda _db, _migrator: None),
            *_migrations.MIGRATIONS[12:])  # fmt: skip


def test_a_key_of_a_spooled_request_finds_its_order_after_the_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, spool = f"sqlite:///{tmp_path}/e.sqlite3", tmp_path / "spool.jsonl"
    with Simulator(SimConfig(seed=5, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as sim:
        with monkeypatch.context() as old_engine:  # an engine of schema 10: namespaced, untagged ids
            old_engine.setattr(_migrations, "MIGRATIONS", _schema_10_with_todays_order_columns())
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
        # The daemon reads what an earlier run left open before the engine starts: that read must not migrate the
        # database without knowing the spool (diff review: it did, and the key sent again placed a second order).
        assert _leftover_open_orders(url) == 0
        monkeypatch.setattr(_migrations, "MIGRATIONS", _todays_without_the_order_columns())
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


def test_migrating_an_empty_database_keeps_the_layout_of_the_ids_waiting_in_the_spool(tmp_path: Path) -> None:
    for name, spool, expected in [
        ("old", SpoolIds(unscoped=True, untagged=True), (False, False)),  # an engine before schema 10
        ("ten", SpoolIds(untagged=True), (True, False)),  # schema 10: namespaced, untagged
        ("new", SpoolIds(), (True, True)),
    ]:
        handle = connect(f"sqlite:///{tmp_path}/{name}.sqlite3", apply_migrations=False)
        try:
            migrate(handle, spool=spool)
            assert (bool(id_namespace(handle)), bool(id_tag(handle))) == expected, name
        finally:
            handle.close()


def test_what_the_spooled_ids_were_made_with_is_read_off_the_records() -> None:
    from datetime import UTC, datetime

    from actors.persistence._spool import spool_ids
    from engine.domain import Order, OrderRequest, OrderRole, OrderStatus, OrderType, RequestRecord, Side
    from engine.exchange import client_order_id

    when = datetime(2026, 1, 1, tzinfo=UTC)
    request = OrderRequest(request_id="r1", pair=PAIR, side=Side.BUY, amount=Decimal("0.01"), price=Decimal(60000),
                           idempotency_key="k1", created_at=when)  # fmt: skip

    def spooled(cid: str) -> list[Any]:
        order = Order(client_order_id=cid, request_id="r1", pair=PAIR, side=Side.BUY, order_type=OrderType.LIMIT,
                      status=OrderStatus.SUBMITTED, price=Decimal(60000), amount=Decimal("0.01"), created_at=when,
                      updated_at=when)  # fmt: skip
        return [RequestRecord.of(request, None, "binance"), order]

    assert spool_ids(spooled(client_order_id("k1", pair=PAIR))) == (2, SpoolIds(unscoped=True, untagged=True))
    assert spool_ids(spooled(client_order_id("k1", pair=PAIR, namespace="ab" * 8))) == (2, SpoolIds(untagged=True))
    tagged = client_order_id("k1", pair=PAIR, namespace="ab" * 8, tag="abcd")
    assert spool_ids(spooled(tagged)) == (2, SpoolIds())
    # a fallback's id says the same as its primary's (third review: only the primary's was compared)
    assert spool_ids(spooled(client_order_id("k1", pair=PAIR, fallback=1))) == (2, SpoolIds(True, True))
    # another engine's order, recorded as external, says nothing of this database's ids (third review)
    [request_record, other] = spooled(client_order_id("k9", pair=PAIR))
    external = other.model_copy(update={"role": OrderRole.EXTERNAL})
    assert spool_ids([request_record, external]) == (2, SpoolIds())
