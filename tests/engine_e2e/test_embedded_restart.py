"""The daemon's own simulator restarted on the same database: a new run's orders and fills are stored like the
first run's (`make run` twice)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from db import connect, find_errors, find_fills, find_orders
from engine.api import Accepted, Engine, EventKind
from engine.clock import SystemClock
from engine.config import Config
from engine.domain import OrderStatus
from tests.engine_e2e.test_engine_sim import Events

PAIR = "BTC/USDT"


def _one_market_buy(url: str, tmp_path: Path) -> None:
    config = Config.model_validate({"exchange": {"pair_whitelist": [PAIR]}, "stream": {"market_data": False}})
    engine = Engine.start(config, clock=SystemClock(), database_url=url, spool_path=tmp_path / "spool.jsonl")
    try:
        events = Events()
        engine.subscribe(events)
        outcome = engine.place_order(PAIR, "buy", "0.001", order_type="market").result(timeout=20)
        assert isinstance(outcome, Accepted), outcome
        [done] = events.wait_for(EventKind.DONE)
        assert done.trade is not None and done.trade.filled == Decimal("0.001")
    finally:
        engine.stop()


def test_a_restarted_embedded_simulator_never_reuses_the_ids_the_database_holds(tmp_path: Path) -> None:
    # Each start numbered orders from 1000 and trades from 5000 again: the second run's order and fill were
    # refused by the database (unique per exchange and pair / symbol), and its filled order stayed "submitted".
    url = f"sqlite:///{tmp_path}/e.sqlite3"
    _one_market_buy(url, tmp_path)
    _one_market_buy(url, tmp_path)
    reader = connect(url)
    try:
        orders = find_orders(reader)
        fills = find_fills(reader)
        refused = find_errors(reader, operation="persist")
    finally:
        reader.close()
    assert refused == []
    assert sorted(o.status for o in orders) == [OrderStatus.FILLED, OrderStatus.FILLED]
    assert len({o.exchange_order_id for o in orders}) == 2 and len(fills) >= 2
