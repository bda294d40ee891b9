"""A resting limit the exchange expires by its own rules (a halt: `eR` EXCHANGE_CANCELED), end to end.

Found by a simulator audit (the simulator never expired a resting order): the market fallback went out at once for
the whole remainder, the limit's remaining time and `execution.fallback_after_external_cancel` ignored. It stops now
as an outside cancel does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from loguru import logger

from engine.api import Accepted, EventKind
from engine.domain import TradeStatus
from sim import Simulator
from tests.engine_e2e.test_amended_outside import PAIR, SYMBOL, engine, sim

__all__ = ["engine", "sim"]  # the fixtures


def test_a_resting_limit_the_exchange_expires_ends_without_a_fallback(engine: Any, sim: Simulator) -> None:
    eng, events = engine
    alerts: list[str] = []
    sink = logger.add(lambda m: alerts.append(str(m.record["extra"].get("alert"))), level="CRITICAL", catch=False)
    try:
        placed = eng.place_order(PAIR, "buy", "0.01", "59900", idempotency_key="halted").result(20)
        assert isinstance(placed, Accepted)
        sim.control.fill_order(SYMBOL, client_order_id=placed.order.client_order_id, quantity="0.003")
        assert sim.control.expire_order(SYMBOL, client_order_id=placed.order.client_order_id) == "EXPIRED"
        [done] = events.wait_for(EventKind.DONE)
    finally:
        logger.remove(sink)
    assert done.trade is not None and (done.trade.status, done.trade.filled) == (TradeStatus.PARTIAL, Decimal("0.003"))
    assert "expired by the exchange" in (done.trade.note or ""), done.trade.note
    assert "external_cancel" in alerts
    assert len(sim.control.ledger()["orders"]) == 1  # no fallback
