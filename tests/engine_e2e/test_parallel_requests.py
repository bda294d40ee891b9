"""`execution.conflict_policy = "parallel"` through the whole engine against the simulator: two resting buys of one
pair at once, a sell refused beside them, and a restart in between after which each resumes with its own remaining
time, falls back on its own and ends with its own trade. Time is a manual clock shared across the restart."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from db import connect, fills_of, find_orders, get_trade
from engine.api import Accepted, Engine, EventKind, Refusal, RefusalReason
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.domain import TradeStatus
from sim import SimConfig, Simulator
from tests.engine_e2e._engine_sim_helpers import Events, settle

PAIR = "BTC/USDT"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(seed=5, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def start(sim: Simulator, tmp_path: Path) -> Iterator[Any]:
    engines: list[Engine] = []

    def _start(clock: ManualClock) -> tuple[Engine, Events]:
        config = Config.model_validate({
            "stream": {"user_data": False, "market_data": False},
            "exchange": {"pair_whitelist": [PAIR]},
            "execution": {"limit_timeout_s": "5", "conflict_policy": "parallel"},
        })  # fmt: skip
        events = Events()
        engine = Engine.start(config, clock=clock, sim=sim, database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
                              spool_path=tmp_path / "spool.jsonl", listeners=[events])  # fmt: skip
        engines.append(engine)
        return engine, events

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


def _ledger(sim: Simulator) -> dict[str, str]:
    return {o["clientOrderId"]: o["status"] for o in sim.control.ledger()["orders"] if o["clientOrderId"][:3] == "bx-"}


def test_two_resting_buys_of_one_pair_resume_after_a_restart_each_with_its_own_time(
    start: Any, sim: Simulator, tmp_path: Path
) -> None:
    clock = ManualClock(SystemClock().now_ms())
    first, _ = start(clock)
    a = first.place_order(PAIR, "buy", "0.01", "59950", idempotency_key="ladder-a").result(20)
    first.ticker.advance(2_000)
    b = first.place_order(PAIR, "buy", "0.02", "59940", idempotency_key="ladder-b").result(20)
    assert isinstance(a, Accepted) and isinstance(b, Accepted), (a, b)
    a_id, b_id = a.order.request_id, b.order.request_id
    assert _ledger(sim) == {a.order.client_order_id: "NEW", b.order.client_order_id: "NEW"}  # both rest at once

    sell = first.place_order(PAIR, "sell", "0.01", "60100").result(20)
    assert isinstance(sell, Refusal) and sell.reason is RefusalReason.CONFLICT, sell
    assert sell.details == {"request_id": a_id, "side": "buy", "cause": "opposite_side"}
    assert "self-trade" in sell.message
    first.ticker.advance(1_000)  # a has 2 s left, b 4 s
    first.stop(graceful=False)  # both left resting, as a crash leaves them

    second, events = start(ManualClock(clock.now_ms()))
    assert second.health()["recovery"]["requests_resumed"] == 2
    assert sorted(second.active_requests(PAIR)) == sorted([a_id, b_id])
    second.ticker.advance(1_500)
    settle(second)
    assert set(_ledger(sim).values()) == {"NEW"}  # neither is due yet
    second.ticker.advance(1_000)  # a's 5 s are up; b has 1.5 s left
    [done_a] = events.wait_for(EventKind.DONE)
    assert done_a.request_id == a_id and done_a.trade is not None
    assert done_a.trade.status is TradeStatus.FILLED and done_a.trade.filled == Decimal("0.01")
    settle(second)
    assert _ledger(sim)[b.order.client_order_id] == "NEW" and second.active_requests(PAIR) == [b_id]

    c = second.place_order(PAIR, "buy", "0.01", "59930", idempotency_key="ladder-c").result(20)
    assert isinstance(c, Accepted), c  # a third buy beside the resumed one
    second.ticker.advance(1_500)  # b's time is up
    done = events.wait_for(EventKind.DONE, 2)
    assert done[1].request_id == b_id and done[1].trade is not None and done[1].trade.filled == Decimal("0.02")
    assert second.active_requests(PAIR) == [c.order.request_id]
    assert second.cancel_order(PAIR, c.order.request_id).result(20).client_order_ids == (c.order.client_order_id,)
    events.wait_for(EventKind.DONE, 3)
    settle(second)
    second._root.proxy().store().get(timeout=10).flush().get(timeout=10)

    ledger = _ledger(sim)
    assert sorted(ledger.values()) == ["CANCELED", "CANCELED", "CANCELED", "FILLED", "FILLED"]
    handle = connect(f"sqlite:///{tmp_path}/engine.sqlite3")
    try:
        orders = find_orders(handle)
        for request_id, amount in ((a_id, "0.01"), (b_id, "0.02"), (c.order.request_id, "0")):
            own = [o for o in orders if o.request_id == request_id]
            filled = sum((f.quantity for o in own for f in fills_of(handle, o.client_order_id)), Decimal(0))
            trade = get_trade(handle, request_id)
            assert trade is not None and trade.filled == filled == Decimal(amount), (request_id, trade, filled)
        assert {o.request_id for o in orders} == {a_id, b_id, c.order.request_id} and len(orders) == 5
    finally:
        handle.close()
