"""Idempotency keys are scoped to the database: a key used again on a new database never meets the old order.

Found by a strategy author: client order ids were a digest of (pair, key) alone. After starting on a fresh
database (or with a second engine on the same account), a request reusing a key got the client order id of an
order the exchange had long filled (Binance accepts a filled order's id again). When that create's answer was
lost, the lookup by client order id found the OLD order, and the new request was booked as filled at the old
order's price with the old order's fill, on an order that never reached the exchange.

Each database draws a namespace when it is created (schema 10) and every client order id is made in it; a
database that already held requests keeps the ids it made (empty namespace), so its keys still find their orders.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from db import connect, id_namespace, migrate
from engine.api import Accepted, Engine, EventKind
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.exchange import client_order_id
from sim import FaultSpec, SimConfig, Simulator
from tests.engine_e2e._engine_sim_helpers import settle
from tests.engine_e2e.test_engine_sim import Events

PAIR = "BTC/USDT"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(seed=11, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})
    with Simulator(config) as simulator:
        yield simulator


def _start(sim: Simulator, tmp_path: Path, name: str, clock: ManualClock) -> tuple[Engine, Events]:
    config = Config.model_validate(
        {
            "stream": {"user_data": False, "market_data": False},
            "exchange": {"pair_whitelist": [PAIR]},
            "execution": {"limit_timeout_s": "30", "unknown_outcome_grace_s": "4"},
        }
    )
    events = Events()
    engine = Engine.start(config, clock=clock, sim=sim, database_url=f"sqlite:///{tmp_path}/{name}.sqlite3",
                          spool_path=tmp_path / f"{name}.spool", listeners=[events])  # fmt: skip
    return engine, events


def test_a_key_reused_on_a_new_database_does_not_take_the_old_order_for_its_own(sim: Simulator, tmp_path: Path) -> None:
    clock = ManualClock(SystemClock().now_ms())
    first, _ = _start(sim, tmp_path, "a", clock)
    try:
        old = first.place_order(PAIR, "buy", "0.001", order_type="market", idempotency_key="reuse-X").result(20)
        assert isinstance(old, Accepted) and old.order.status.value == "filled"
    finally:
        first.stop(graceful=False)
    second, events = _start(sim, tmp_path, "b", ManualClock(clock.now_ms()))
    try:
        # The create reaches nobody and its answer is an error: the outcome is unknown, so it is looked up.
        sim.control.add_fault(FaultSpec(kind="http_error", target="POST /api/v3/order", count=1, status=503,
                                           code=-1006, execute=False))  # fmt: skip
        placement = second.place_order(PAIR, "buy", "0.005", "30000", idempotency_key="reuse-X")
        for _ in range(20):  # lookups answer "not found" through the grace period, then the request ends
            settle(second)
            if placement.done():
                break
            second.ticker.advance(1_000)
        outcome = placement.result(20)
        new_cids = [o.client_order_id for o in second.open_orders()]
        fills = events.of(EventKind.FILL)
    finally:
        second.stop(graceful=False)
    assert not fills, f"the old order's fill was booked for the new request: {fills}"
    if isinstance(outcome, Accepted):
        assert outcome.order.client_order_id != old.order.client_order_id
        assert outcome.order.filled == 0 and outcome.order.price == Decimal(30000)
    assert old.order.client_order_id not in new_cids
    ledger = [o for o in sim.control.ledger()["orders"] if o["clientOrderId"] == old.order.client_order_id]
    assert len(ledger) == 1, "the old id was used again at the exchange"


def test_a_new_database_draws_a_namespace_and_one_with_requests_keeps_its_ids(tmp_path: Path) -> None:
    fresh, other = connect(f"sqlite:///{tmp_path}/f.sqlite3"), connect(f"sqlite:///{tmp_path}/o.sqlite3")
    try:
        assert len(id_namespace(fresh)) == 16 and id_namespace(other) not in ("", id_namespace(fresh))
    finally:
        fresh.close()
        other.close()
    # A database at schema 9 that holds a request: its client order ids were made without a namespace.
    old = connect(f"sqlite:///{tmp_path}/old.sqlite3", apply_migrations=False)
    try:
        migrate(old, target=9)
        old.execute_sql(
            "INSERT INTO requests (request_id, idempotency_key, exchange, pair, payload, created_at) "
            "VALUES ('r1', 'k', 'binance', 'BTC/USDT', '{}', '2026-01-01T00:00:00.000000+00:00')"
        )
        migrate(old)
        assert id_namespace(old) == ""
    finally:
        old.close()
    namespaced = client_order_id("k", pair=PAIR, namespace="0123456789abcdef")
    assert namespaced != client_order_id("k", pair=PAIR) and namespaced.startswith("bx-") and len(namespaced) <= 36
