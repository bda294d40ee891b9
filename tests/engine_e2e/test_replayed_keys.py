"""A replayed idempotency key tells the original request's real outcome, against the simulator with the real ccxt
client: a strategy re-sending after a crash to learn the result got `Accepted(duplicate=True)` with the limit
that timed out — `canceled`, nothing filled — although its market fallback had filled the request, and would buy
again; and the duplicate's `request_id` was a fresh id no cancel could reach the request with.

Time is a manual clock: the limit times out when the test advances the ticker. The simulator holds a chosen answer
until the test releases it (no wall-clock latency for the test's own steps to outrun). The facade's side (an outcome
that cannot be read, a stopped engine, a request still in its pair's memory) is in
tests/engine/api/test_replay_answers.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from engine.api import Accepted, CancelStatus, Engine, EventKind
from engine.domain import OrderRole, OrderStatus, Pair, TradeStatus
from tests.engine_e2e import _engine_sim_helpers as _shared
from tests.engine_e2e._engine_sim_helpers import LIMIT, PAIR, Events, _sim_orders, sim_config
from tests.sim._hold import HoldingSimulator

start = _shared.start


@pytest.fixture
def sim() -> Iterator[HoldingSimulator]:
    """The engine tests' simulator, whose answers can be held until the test releases them."""
    simulator = HoldingSimulator(sim_config())
    with simulator:
        yield simulator


def _replay(engine: Engine, key: str) -> tuple[Accepted, str]:
    placement = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key=key)
    answer = placement.result(timeout=20)
    assert isinstance(answer, Accepted) and answer.duplicate, answer
    return answer, placement.request_id


def _done(events: Events, request_id: str) -> None:
    events.wait_for(EventKind.DONE)
    assert [e.request_id for e in events.of(EventKind.DONE)] == [request_id]


def test_a_finished_request_replayed_answers_its_trade_its_fallback_and_its_own_id(
    start: Any, sim: HoldingSimulator
) -> None:
    engine, events = start()
    first = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="k1").result(timeout=20)
    assert isinstance(first, Accepted), first
    request_id = first.order.request_id
    engine.ticker.advance(5_000)  # the limit times out; the market fallback fills the request
    _done(events, request_id)
    assert engine.active_requests(PAIR) == []  # a barrier through the pair actor: it has left memory
    assert engine._routing.get(Pair(PAIR)).get_order(first.order.client_order_id).get(timeout=10) is None
    sent = len(_sim_orders(sim))

    answer, answered_id = _replay(engine, "k1")
    trade = answer.trade
    assert trade is not None and trade.status is TradeStatus.FILLED and trade.filled == Decimal("0.01"), trade
    assert trade.average_price is not None and trade.request_id == request_id
    latest = answer.latest
    assert latest is not None and latest.role is OrderRole.FALLBACK and latest.status is OrderStatus.FILLED
    assert latest.filled == Decimal("0.01") and latest.client_order_id.endswith("-f1")
    assert answer.order.client_order_id == first.order.client_order_id  # the first accepted order, as before
    assert answer.order.status is OrderStatus.CANCELED
    assert answered_id == request_id  # the placement names the request that executed
    outcome = engine.cancel_order(PAIR, answered_id).result(timeout=20)
    assert outcome.status is CancelStatus.ALREADY_DONE and outcome.final_status is TradeStatus.FILLED, outcome
    assert len(_sim_orders(sim)) == sent  # nothing new was sent


def test_a_request_replayed_while_its_fallback_works_answers_that_fallback_and_no_trade(
    start: Any, sim: HoldingSimulator
) -> None:
    engine, events = start()
    first = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="k2").result(timeout=20)
    assert isinstance(first, Accepted), first
    request_id = first.order.request_id
    # The fallback's create is answered only once the key was replayed: it is still being placed then. (A 5 s
    # latency stood for "late": a test thread held up that long by load saw the answer first and failed.)
    held = sim.hold("POST", "/api/v3/order")
    engine.ticker.advance(5_000)
    events.wait_for(EventKind.FALLBACK)

    answer, answered_id = _replay(engine, "k2")
    assert answer.trade is None  # still executing
    latest = answer.latest
    assert latest is not None and latest.role is OrderRole.FALLBACK and latest.client_order_id.endswith("-f1")
    assert latest.status in (OrderStatus.PENDING_SUBMIT, OrderStatus.SUBMITTED), latest
    assert answer.order.status is OrderStatus.CANCELED and answer.order.filled == 0
    assert answered_id == request_id

    held.release()
    _done(events, request_id)  # the fallback's answer came: the request is over
    again, _ = _replay(engine, "k2")
    assert again.trade is not None and again.trade.status is TradeStatus.FILLED
    assert again.latest is not None and again.latest.status is OrderStatus.FILLED
    assert [o["status"] for o in _sim_orders(sim)] == ["CANCELED", "FILLED"]  # one fallback, no second request
