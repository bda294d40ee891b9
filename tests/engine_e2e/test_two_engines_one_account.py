"""Two engines on one exchange account, each with its own database: neither takes the other's orders for its own.

Found by a review: every engine's client order ids began `bx-`, so an engine took another engine's orders for its
own lost ones. On a pair both trade, it adopted them (CRITICAL `adopted_order`, stored as its own orders) and its
graceful stop canceled them; on a pair only the other one trades, every order the other placed raised a false
`adopted_order`. Ids now carry the database's tag (`db.id_tag`): another engine's orders are external, tracked
and announced, never canceled or traded against.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from db import connect, get_order
from engine.api import Accepted, Engine, EventKind
from engine.clock import SystemClock
from engine.config import Config
from engine.domain import OrderRole
from sim import SimConfig, Simulator
from tests.engine_e2e._engine_sim_helpers import alerts, settle
from tests.engine_e2e.test_engine_sim import Events

__all__ = ["alerts"]  # the fixture

ETH = "ETH/USDT"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(
        seed=23, symbols=["BTCUSDT", "ETHUSDT"], start_prices={"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    )
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def start(sim: Simulator, tmp_path: Path) -> Iterator[Any]:
    engines: list[Engine] = []

    def _start(name: str, pairs: list[str], streams: int) -> tuple[Engine, Events, str]:
        """Start an engine; `streams`: the user data subscriptions live at the simulator once it has subscribed."""
        config = Config.model_validate({"exchange": {"pair_whitelist": pairs}, "execution": {"limit_timeout_s": "600"}})
        events, url = Events(), f"sqlite:///{tmp_path}/{name}.sqlite3"
        engine = Engine.start(config, clock=SystemClock(), sim=sim, database_url=url,
                              spool_path=tmp_path / f"{name}.spool", listeners=[events])  # fmt: skip
        engines.append(engine)
        assert sim.control.wait_subscriptions(streams, within_s=20), "a user data stream never subscribed"
        return engine, events, url

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


def _status(sim: Simulator, cid: str) -> str:
    [row] = [o for o in sim.control.ledger()["orders"] if o["clientOrderId"] == cid]
    return str(row["status"])


def _stored_role(url: str, cid: str) -> OrderRole | None:
    handle = connect(url)
    try:
        order = get_order(handle, cid)
        return order.role if order is not None else None
    finally:
        handle.close()


def test_another_engines_orders_on_a_shared_pair_are_external_and_survive_this_ones_stop(
    start: Any, sim: Simulator, alerts: list[str]
) -> None:
    first, first_events, first_url = start("first", [ETH], 1)
    second, _, _ = start("second", [ETH], 2)
    placed = second.place_order(ETH, "buy", "0.1", "2900", idempotency_key="theirs").result(20)
    assert isinstance(placed, Accepted)
    cid = placed.order.client_order_id
    sim.control.fill_order("ETHUSDT", client_order_id=cid, quantity="0.04")  # reported to both engines
    [seen] = first_events.wait_for(EventKind.EXTERNAL)
    assert seen.client_order_id == cid and "placed by another engine" in (seen.message or "")
    own = first.place_order(ETH, "buy", "0.1", "2800", idempotency_key="mine").result(20)
    assert isinstance(own, Accepted)

    first.stop(graceful=True)  # on_shutdown = cancel: its own order only

    assert _status(sim, own.order.client_order_id) == "CANCELED"
    assert _status(sim, cid) == "PARTIALLY_FILLED", "the first engine canceled the second one's order at its stop"
    assert _stored_role(first_url, cid) is OrderRole.EXTERNAL
    assert "adopted_order" not in alerts and "external_order" in alerts


def test_orders_another_engine_left_open_are_external_at_this_ones_start(
    start: Any, sim: Simulator, alerts: list[str]
) -> None:
    other, _, _ = start("other", [ETH], 1)
    placed = other.place_order(ETH, "sell", "0.1", "3100", idempotency_key="resting").result(20)
    assert isinstance(placed, Accepted)
    cid = placed.order.client_order_id
    other.stop(graceful=False)  # its limit stays live

    engine, events, url = start("this", [ETH], 1)  # the start's open-orders scan lists the other engine's order
    [seen] = events.wait_for(EventKind.EXTERNAL)
    assert seen.client_order_id == cid
    settle(engine)  # the store caught up
    assert _stored_role(url, cid) is OrderRole.EXTERNAL
    assert "adopted_order" not in alerts
    engine.stop(graceful=True)
    assert _status(sim, cid) == "NEW"
