"""A crash while the fallback waits to be re-sent (FALLBACK_WAIT), through the whole engine against the simulator.

The limit times out, its market fallback is refused with a retry-later error (-1016 "service shutting down": nothing
executed) on its send and every re-send under its id, and the plan waits to send the remainder as a new order. The
engine stops without touching anything (as a crash would) and a new one starts on the same database and exchange,
with the manual clock of the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from db import connect, find_orders, get_trade
from engine.api import Accepted, Engine, EventKind
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.domain import OrderStatus, TradeStatus
from sim import FaultSpec, SimConfig, Simulator
from tests.engine_e2e.test_engine_sim import Events
from tests.engine_e2e.test_recovery import settle_all

PAIR = "BTC/USDT"
_SHUTTING_DOWN = FaultSpec(kind="http_error", target="POST /api/v3/order", count=4, status=400, code=-1016,
                           msg="Service shutting down.", execute=False)  # fmt: skip
"""The fallback's send and its three re-sends under the same id (max_create_resends) all refused."""


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
            "execution": {"limit_timeout_s": "5"},
        })  # fmt: skip
        events = Events()
        engine = Engine.start(config, clock=clock, sim=sim, database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
                              spool_path=tmp_path / "spool.jsonl", listeners=[events])  # fmt: skip
        engines.append(engine)
        return engine, events

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


def _bx_orders(sim: Simulator) -> list[dict[str, Any]]:
    return [o for o in sim.control.ledger()["orders"] if str(o["clientOrderId"]).startswith("bx-")]


def test_a_crash_while_the_fallback_waits_to_be_resent_resumes_the_wait_and_fills_the_remainder(
    start: Any, sim: Simulator, tmp_path: Path
) -> None:
    clock = ManualClock(SystemClock().now_ms())
    first, first_events = start(clock)
    accepted = first.place_order(PAIR, "buy", "0.01", "59950", idempotency_key="wait-crash").result(20)
    assert isinstance(accepted, Accepted)
    sim.control.add_fault(_SHUTTING_DOWN)
    first.ticker.advance(5_000)  # the limit's time is up: canceled, then the fallback refused four times
    settle_all(first)
    assert [o["status"] for o in _bx_orders(sim)] == ["CANCELED"]  # nothing else reached the book
    assert not first_events.of(EventKind.DONE), "the plan should be waiting to re-send, not done"
    first._root.proxy().store().get(timeout=10).flush().get(timeout=10)  # what it stored is committed
    first.stop(graceful=False)  # its 1 s wait never ran out

    second, events = start(ManualClock(clock.now_ms() + 500))
    assert second.health()["recovery"]["requests_resumed"] == 1
    settle_all(second)  # the failed fallback looked up (never created) while the wait goes on
    assert not events.of(EventKind.DONE), [e.message for e in events.of(EventKind.DONE)]
    second.ticker.advance(500)  # the rest of the wait
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.status is TradeStatus.FILLED, done.trade
    assert done.trade.filled == Decimal("0.01") and "resumed after a restart" in done.trade.note
    ledger = _bx_orders(sim)
    assert [o["status"] for o in ledger] == ["CANCELED", "FILLED"]
    assert ledger[1]["clientOrderId"].endswith("-f2")  # a new order: f1 was never created
    settle_all(second)
    handle = connect(f"sqlite:///{tmp_path}/engine.sqlite3")
    try:
        statuses = {o.client_order_id[-3:]: o.status for o in find_orders(handle)}
        trade = get_trade(handle, accepted.order.request_id)
    finally:
        handle.close()
    assert sorted(statuses.values()) == sorted([OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.FILLED])
    assert trade is not None and trade.filled == Decimal("0.01")
