"""What happened to an order can be read off the log alone: one INFO line per step — acknowledged (with the
exchange's order id), each fill, the fallback sent, canceled — each with its pair, request and client order id.
Before, neither the ack, nor a fill, nor a fallback's order, nor a confirmed cancel had a line."""

from __future__ import annotations

from typing import Any

from loguru import logger

from engine.api import Accepted, Engine, EventKind
from sim import Simulator
from tests.engine_e2e.test_engine_sim import Events
from tests.engine_e2e.test_realtime import PAIR, engine, sim  # noqa: F401 - the fixtures


def test_an_orders_ack_fills_and_cancel_each_have_a_line_with_their_ids(
    engine: tuple[Engine, Events],  # noqa: F811 - the fixture
    sim: Simulator,  # noqa: F811 - the fixture
) -> None:
    eng, events = engine
    records: list[dict[str, Any]] = []
    sink = logger.add(lambda m: records.append(m.record), level="INFO", filter=lambda r: r["name"] == "actors._events")
    try:
        placed = eng.place_order(PAIR, "buy", "0.01", "59900").result(timeout=20)
        assert isinstance(placed, Accepted), placed
        cid = placed.order.client_order_id
        sim.control.fill_order("BTCUSDT", client_order_id=cid, quantity="0.004")
        events.wait_for(EventKind.FILL)
        assert eng.cancel_order(PAIR, placed.order.request_id).result(20).canceling
        events.wait_for(EventKind.DONE)
    finally:
        logger.remove(sink)
    lines = [(r["message"], r["extra"]) for r in records]
    assert all(x["pair"] == PAIR and x["client_order_id"] == cid and x["request_id"] == placed.order.request_id
               for _, x in lines), lines  # fmt: skip
    messages = [m for m, _ in lines]
    ack = f"order acknowledged by the exchange (order id {placed.order.exchange_order_id})"
    assert messages[0].startswith(ack), messages
    [fill] = [m for m in messages if m.startswith("fill ")]
    assert fill.startswith("fill 0.004 at 59900 (trade ") and fill.endswith("; order 0.004 of 0.01"), fill
    assert any(m.startswith("order canceled") for m in messages), messages
