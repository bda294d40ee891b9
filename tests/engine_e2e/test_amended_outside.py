"""An engine order amended outside the engine (order amend keep priority, as the Binance UI's edit does).

Found by a simulator audit: the amend gives the order a new client order id (generated unless told otherwise), and
every later report carries it. The engine took its own order for an external one: each fill was announced twice
(0.008 of FILL events for 0.004 executed), a CRITICAL `record_rejected` (the external row clashed with its own on the
exchange order id) and a false `external_order` alert; its cancel and lookups by client order id no longer found the
order (-2011, -2013), so a limit could be closed as vanished and its remainder sent as a fallback while the amended
order still rested. The engine now knows the order by its order id: reports and scan rows are matched by it, cancels
and lookups go by it, the operator is told once (alert `external_amend`), and, someone having intervened, what the
amended order does not fill gets no fallback (unless `execution.fallback_after_external_cancel`).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from engine.api import Accepted, Engine, EventKind
from engine.clock import SystemClock
from engine.config import Config
from engine.domain import TradeStatus
from sim import SimConfig, Simulator
from tests.engine_e2e._engine_sim_helpers import alerts
from tests.engine_e2e.test_engine_sim import Events

__all__ = ["alerts"]  # the fixture

PAIR, SYMBOL = "BTC/USDT", "BTCUSDT"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=29, symbols=[SYMBOL], start_prices={SYMBOL: Decimal(60000)})) as simulator:
        yield simulator


@pytest.fixture
def engine(sim: Simulator, tmp_path: Path) -> Iterator[tuple[Engine, Events]]:
    config = Config.model_validate(
        {
            "exchange": {"pair_whitelist": [PAIR]},
            "execution": {"limit_timeout_s": "600"},
            "stream": {"market_data": False},
        }
    )
    events = Events()
    engine = Engine.start(config, clock=SystemClock(), sim=sim, database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                          spool_path=tmp_path / "spool.jsonl", listeners=[events])  # fmt: skip
    assert sim.control.wait_subscriptions(1, within_s=20), "the user data stream never subscribed"
    try:
        yield engine, events
    finally:
        engine.stop(graceful=False)


def _ledger_order(sim: Simulator, order_id: int) -> dict[str, object]:
    [row] = [o for o in sim.control.ledger()["orders"] if o["orderId"] == order_id]
    return row


def test_an_order_amended_outside_is_followed_by_its_order_id_and_gets_no_fallback(
    engine: tuple[Engine, Events], sim: Simulator, alerts: list[str]
) -> None:
    eng, events = engine
    placed = eng.place_order(PAIR, "buy", "0.01", "59900", idempotency_key="amend-me").result(20)
    assert isinstance(placed, Accepted)
    order_id = int(placed.order.exchange_order_id or 0)
    new_cid = sim.control.amend_order(SYMBOL, "0.004", order_id=order_id)  # someone edits it in the UI
    sim.control.fill_order(SYMBOL, order_id=order_id, quantity="0.001")
    [fill] = events.wait_for(EventKind.FILL)
    assert fill.client_order_id == placed.order.client_order_id  # its own order, not an external one

    outcome = eng.cancel_order(PAIR, placed.order.request_id).result(20)  # by its order id: the old id is gone
    assert outcome is not None
    [done] = events.wait_for(EventKind.DONE)
    row = _ledger_order(sim, order_id)
    assert (row["status"], row["executedQty"], row["clientOrderId"]) == ("CANCELED", "0.00100000", new_cid)
    assert done.trade is not None and done.trade.filled == Decimal("0.001")
    assert done.trade.status is TradeStatus.PARTIAL
    fills = events.of(EventKind.FILL)
    assert sum((e.fill.quantity for e in fills if e.fill), Decimal(0)) == Decimal("0.001")  # announced once
    assert not events.of(EventKind.EXTERNAL)
    assert "external_amend" in alerts and "external_order" not in alerts and "record_rejected" not in alerts
    assert len(sim.control.ledger()["orders"]) == 1  # no fallback


def test_an_amended_order_that_fills_ends_its_request_with_what_it_filled(
    engine: tuple[Engine, Events], sim: Simulator, alerts: list[str]
) -> None:
    eng, events = engine
    placed = eng.place_order(PAIR, "buy", "0.01", "59900", idempotency_key="amend-fill").result(20)
    assert isinstance(placed, Accepted)
    order_id = int(placed.order.exchange_order_id or 0)
    sim.control.amend_order(SYMBOL, "0.004", order_id=order_id)
    sim.control.fill_order(SYMBOL, order_id=order_id)  # all of the amended 0.004
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None
    assert (done.trade.filled, done.trade.status) == (Decimal("0.004"), TradeStatus.PARTIAL)
    assert "amended outside the engine" in (done.trade.note or ""), done.trade.note
    assert sum((e.fill.quantity for e in events.of(EventKind.FILL) if e.fill), Decimal(0)) == Decimal("0.004")
    assert len(sim.control.ledger()["orders"]) == 1  # no fallback for the 0.006 the amend took away
    assert "external_order" not in alerts and "record_rejected" not in alerts


def test_an_amend_survives_a_restart_told_once_and_the_new_id_finds_the_order(
    sim: Simulator, tmp_path: Path, alerts: list[str]
) -> None:
    # Left alone last session: the amend lived in memory only. After a restart the engine announced it again, and
    # the client order id the exchange now shows (the one a person sees in the UI) found nothing.
    config = Config.model_validate({"exchange": {"pair_whitelist": [PAIR]}, "execution": {"limit_timeout_s": "600"},
                                    "stream": {"market_data": False}})  # fmt: skip
    url = f"sqlite:///{tmp_path}/e.sqlite3"

    def start(events: Events) -> Engine:
        engine = Engine.start(config, clock=SystemClock(), sim=sim, database_url=url, spool_path=tmp_path / "s.jsonl",
                              listeners=[events])  # fmt: skip
        assert sim.control.wait_subscriptions(1, within_s=20), "the user data stream never subscribed"
        return engine

    first_events = Events()
    first = start(first_events)
    try:
        placed = first.place_order(PAIR, "buy", "0.01", "59900", idempotency_key="amend-restart").result(20)
        assert isinstance(placed, Accepted)
        order_id = int(placed.order.exchange_order_id or 0)
        new_cid = sim.control.amend_order(SYMBOL, "0.004", order_id=order_id)
        sim.control.fill_order(SYMBOL, order_id=order_id, quantity="0.001")
        first_events.wait_for(EventKind.FILL)
    finally:
        first.stop(graceful=False)  # the order stays open at the exchange
    assert alerts.count("external_amend") == 1
    events = Events()
    second = start(events)
    try:
        found = second.get_order(PAIR, new_cid)
        assert found is not None and found.client_order_id == placed.order.client_order_id
        assert (found.exchange_client_order_id, found.amended_amount) == (new_cid, Decimal("0.004"))
        sim.control.fill_order(SYMBOL, order_id=order_id, quantity="0.001")
        [fill] = events.wait_for(EventKind.FILL)
        assert fill.client_order_id == placed.order.client_order_id  # its own order, not an external one
        assert second.cancel_order(PAIR, placed.order.request_id).result(20) is not None
        [done] = events.wait_for(EventKind.DONE)
        assert done.trade is not None and done.trade.filled == Decimal("0.002"), done.trade
        mine = second.order_detail(PAIR, placed.order.client_order_id)
        by_new_id = second.order_detail(PAIR, new_cid)  # its fills too, not only the order (diff review)
        assert mine is not None and by_new_id is not None
        assert [f.trade_id for f in by_new_id.fills] == [f.trade_id for f in mine.fills] and len(mine.fills) == 2
    finally:
        second.stop(graceful=False)
    assert alerts.count("external_amend") == 1, alerts  # told once, not again at the restart
    assert "external_order" not in alerts and "record_rejected" not in alerts
    assert len(sim.control.ledger()["orders"]) == 1  # no fallback
