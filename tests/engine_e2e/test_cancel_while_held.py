"""A caller's cancel while the request's create waits in the gateway (found by a hands-on review).

After a 429 the create waits out Retry-After in the gateway. The cancel was answered "canceled at its ack", and the
create went out when the hold ended: a market request canceled meanwhile was filled at the exchange, and its trade
said "filled before the cancel took effect". The create is now withdrawn: nothing reaches the exchange.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from engine.api import EventKind
from engine.domain import TradeStatus
from sim import FaultSpec, Simulator
from tests.actors._crashes import exhaust_restart_budget
from tests.engine_e2e import _engine_sim_helpers as _shared
from tests.engine_e2e._engine_sim_helpers import PAIR, _sim_orders, settle

sim = _shared.sim
start = _shared.start


@pytest.fixture
def held() -> Iterator[threading.Event]:
    """Set once a create's 429 came back and it was handed to the gateway again (to wait out Retry-After)."""
    seen = threading.Event()

    def sink(message: Any) -> None:
        if "sent again under the same id" in str(message.record["message"]):
            seen.set()

    handle = logger.add(sink, level="WARNING")
    yield seen
    logger.remove(handle)


@pytest.mark.parametrize("order_type", ["market", "limit"])
def test_a_request_canceled_while_its_create_waits_out_a_429_never_reaches_the_exchange(
    start: Any, sim: Simulator, held: threading.Event, order_type: str
) -> None:
    engine, events = start()
    sim.control.add_fault(FaultSpec(kind="rate_limit", target="POST /api/v3/order", count=1, retry_after=30))
    price = "60100" if order_type == "limit" else None  # a limit at the market: it would fill at once
    placement = engine.place_order(PAIR, "buy", "0.01", price, order_type=order_type, idempotency_key="held")
    assert held.wait(20), "the 429 never came back"
    cancel = engine.cancel_order(PAIR, placement.request_id).result(20)
    assert cancel is not None and "withdrawn if it has not left" in cancel.message, cancel
    engine.ticker.advance(31_000)  # the hold is over
    settle(engine)
    [done] = events.wait_for(EventKind.DONE)
    assert _sim_orders(sim) == [], "the canceled request reached the exchange"
    assert done.trade is not None and done.trade.status is TradeStatus.CANCELED and done.trade.filled == 0
    assert "filled before the cancel" not in (done.trade.note or ""), done.trade.note


def test_a_halted_pairs_request_canceled_while_its_create_waits_out_a_429_never_reaches_the_exchange(
    start: Any, sim: Simulator, held: threading.Event
) -> None:
    # The pair's actor died past the restart budget while the create waited: its book, tracking-only now and run
    # by the root, did not carry the cancel's withdrawal out, and the market order was filled when the hold ended.
    engine, _events = start()
    sim.control.add_fault(FaultSpec(kind="rate_limit", target="POST /api/v3/order", count=1, retry_after=30))
    placement = engine.place_order(PAIR, "buy", "0.01", order_type="market", idempotency_key="held-halted")
    assert held.wait(20), "the 429 never came back"
    exhaust_restart_budget(engine, PAIR)
    cancel = engine.cancel_order(PAIR, placement.request_id).result(20)
    assert cancel is not None, "the tracking-only book did not take the cancel"
    engine.ticker.advance(31_000)  # the hold is over
    gateway = engine._root.proxy().gateway.get(timeout=20)
    assert gateway.idle(20)  # whatever the hold's end let out was answered (the pair actor is dead: no `settle`)
    engine._root.proxy().pair_refs().get(timeout=20)
    assert _sim_orders(sim) == [], "the canceled request reached the exchange"
