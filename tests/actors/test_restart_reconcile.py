"""Supervision and reconciliation over the simulator: the restart budget is counted within a sliding window of
engine time, a pair actor is reconciled after every restart (what a tell lost in the crash race carried is
found), and a pair halted past the budget is still reconciled through its tracking-only book, read-only.

No streams: nothing but reconciliation can tell the engine of a fill. The clock is manual, so no periodic
round runs by itself; every wait is a barrier (the gateway idle, an ask through the root's inbox).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from pykka._envelope import Envelope
from pykka.messages import ProxyCall

from engine.api import Accepted, Engine, Refusal, RefusalReason
from engine.domain import ExchangeOrderId, Order, OrderStatus, Pair, Side, Symbol, TradeId
from engine.exchange import ExchangeOrderStatus, ExecutionReport, ExecutionType
from sim import SimConfig, Simulator
from tests.actors._crashes import BTC, ETH, exhaust_restart_budget, manual_engine
from tests.sim._hold import HoldingSimulator

_WAIT_S = 20.0


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(
        seed=7, symbols=["BTCUSDT", "ETHUSDT"], start_prices={"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    )
    with HoldingSimulator(config) as simulator:  # answers can be held until the test releases them
        yield simulator


@pytest.fixture
def start(sim: Simulator, tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def _start(**execution: str) -> Engine:
        engine = manual_engine(sim, tmp_path, **execution)
        engines.append(engine)
        return engine

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


def _crash(engine: Engine, pair: Pair) -> Any:
    """Crash `pair`'s actor; return its dead ref once the root restarted it or gave up on it (halted)."""
    old = engine._routing.get(pair)
    old.crash.defer()
    for _ in range(10_000):  # each round is a barrier through the root's inbox, not a sleep
        engine._root.proxy().pair_refs().get(timeout=_WAIT_S)
        if engine._routing.get(pair) is not old or engine.halted:
            return old.actor_ref
    raise AssertionError("the pair actor was neither restarted nor given up on")


def _resting_btc_buy(engine: Engine) -> Order:
    outcome = engine.place_order(BTC, "buy", "0.01", "59950").result(timeout=_WAIT_S)
    assert isinstance(outcome, Accepted), outcome
    assert outcome.order.status is OrderStatus.OPEN
    return outcome.order


def _settle(engine: Engine, done: Callable[[], bool]) -> bool:
    """Let the lookups and what follows them (fills from myTrades) run out: each round waits for the gateway,
    then goes through the root's inbox (answers told to it are handled before the ask)."""
    gateway = engine._root.proxy().gateway.get(timeout=_WAIT_S)
    for _ in range(20):
        assert gateway.idle(_WAIT_S)
        engine._root.proxy().pair_refs().get(timeout=_WAIT_S)
        if done():
            return True
    return False


def _stored(engine: Engine, cid: str) -> tuple[Order | None, list[Any]]:
    store = engine._root.proxy().store().get(timeout=_WAIT_S)
    store.flush().get(timeout=_WAIT_S)
    return store.proxy.get_order(cid).get(timeout=_WAIT_S), store.proxy.fills_of(cid).get(timeout=_WAIT_S)


def _filled_report(order: Order, fill: dict[str, Any]) -> ExecutionReport:
    """The executionReport the user data stream would carry for the simulator's fill of `order`."""
    qty, price = Decimal(str(fill["qty"])), Decimal(str(fill["price"]))
    return ExecutionReport(
        event_time_ms=int(fill["time"]), symbol=Symbol("BTCUSDT"), client_order_id=order.client_order_id,
        orig_client_order_id=None, side=Side.BUY, order_type="LIMIT", time_in_force="GTC", quantity=qty,
        price=price, execution_type=ExecutionType.TRADE, order_status=ExchangeOrderStatus.FILLED, reject_reason="NONE",
        order_id=ExchangeOrderId(int(fill["orderId"])), last_qty=qty, cum_qty=qty, last_price=price,
        commission=Decimal(str(fill["commission"])), commission_asset=str(fill["commissionAsset"]),
        transaction_time_ms=int(fill["time"]), trade_id=TradeId(int(fill["id"])), is_maker=True, cum_quote=qty * price,
        last_quote=qty * price, is_working=True, creation_time_ms=int(fill["time"]), expiry_reason=None,
        subscription_id=None,
    )  # fmt: skip


def _tell_lost_in_the_race(dead: Any, report: ExecutionReport) -> None:
    """What `ActorRef.tell` does when its `is_alive()` check ran before the crash and its `put` after the dying
    actor's `on_failure` took the inbox: the message lands in an inbox nobody reads again (pykka drops it)."""
    assert not dead.is_alive()
    dead.actor_inbox.put(Envelope(ProxyCall(attr_path=("on_report",), args=(report,), kwargs={})))


def test_the_restart_budget_is_counted_within_a_window_of_engine_time(start: Any) -> None:
    engine = start(restart_budget="2", restart_window_s="10")
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(str(m)), format="{message}", filter=lambda r: "died; restarting" in r["message"]
    )
    try:
        _crash(engine, BTC)
        _crash(engine, ETH)  # engine-wide: another pair's restart counts against the same budget
        engine.ticker.advance(10_001)  # both leave the window
        _crash(engine, BTC)
        assert not engine.halted, "halted by restarts that left the window"
        _crash(engine, BTC)
        assert not engine.halted  # four restarts over the engine's life, never more than two within 10 s
        assert engine.health()["restarts"] == 4
        assert [line.split("; ")[1].strip() for line in lines] == [
            "restarting (1/2 within 10.0 s)",
            "restarting (2/2 within 10.0 s)",
            "restarting (1/2 within 10.0 s)",
            "restarting (2/2 within 10.0 s)",
        ]
        engine.ticker.advance(9_000)  # the last two are still within the window: one crash more halts
        _crash(engine, BTC)
        assert engine.halted and engine.health()["halt_reason"] == "restart budget exhausted"
    finally:
        logger.remove(sink)


def test_a_report_lost_in_the_crash_race_is_recovered_by_the_reconciliation_after_the_restart(
    start: Any, sim: Simulator
) -> None:
    engine = start()
    order = _resting_btc_buy(engine)
    cid = order.client_order_id
    # The order fills at the exchange; its report is on the way to the pair actor as the actor crashes.
    fill: dict[str, Any] = sim.control.fill_order("BTCUSDT", client_order_id=cid)
    dead = _crash(engine, BTC)
    _tell_lost_in_the_race(dead, _filled_report(order, fill))

    def filled() -> bool:
        # FILLED comes with the lookup; its fill with the myTrades fetch that follows (a round later at times).
        current = engine.get_order(BTC, cid)
        return current is not None and current.status is OrderStatus.FILLED and current.last_trade_id is not None

    assert _settle(engine, filled), "the fill told in the race window was not recovered"
    stored, fills = _stored(engine, cid)
    assert stored is not None and stored.status is OrderStatus.FILLED
    assert [(f.trade_id, f.quantity, f.price) for f in fills] == [(int(fill["id"]), Decimal("0.01"), Decimal(59950))]
    assert not engine.halted


def test_a_fill_of_a_pair_halted_past_the_budget_is_recorded_by_reconciliation(start: Any, sim: Simulator) -> None:
    engine = start()
    order = _resting_btc_buy(engine)
    cid = order.client_order_id
    exhaust_restart_budget(engine, BTC)
    assert _settle(engine, lambda: True)  # the lookups that followed the restarts are answered
    root = engine._root.proxy()
    # While the actor is dead for good, the order fills at the exchange and no stream delivers the report.
    fill: dict[str, Any] = sim.control.fill_order("BTCUSDT", client_order_id=cid)
    assert [o.client_order_id for o in root.tracked_open_orders(BTC).get(timeout=_WAIT_S)] == [cid]

    assert root.reconcile("periodic").get(timeout=_WAIT_S) == 1  # the tracked BTC order (ETH has none)
    assert _settle(engine, lambda: root.tracked_open_orders(BTC).get(timeout=_WAIT_S) == []), "fill not tracked"
    stored, fills = _stored(engine, cid)
    assert stored is not None and stored.status is OrderStatus.FILLED
    assert [(f.trade_id, f.quantity, f.price) for f in fills] == [(int(fill["id"]), Decimal("0.01"), Decimal(59950))]
    assert engine.halted  # tracked, not traded: still halted
    assert [o["status"] for o in sim.control.ledger()["orders"]] == ["FILLED"]


def test_a_halted_pairs_partial_fill_and_external_cancel_are_recorded_by_reconciliation(
    start: Any, sim: Simulator
) -> None:
    engine = start(fallback="market")
    order = _resting_btc_buy(engine)
    cid = order.client_order_id
    exhaust_restart_budget(engine, BTC)
    assert _settle(engine, lambda: True)  # the lookups that followed the restarts are answered
    root = engine._root.proxy()
    # Half of the limit fills, then someone cancels it at the exchange; no stream tells the engine.
    sim.control.fill_order("BTCUSDT", client_order_id=cid, quantity="0.005")
    sim.control.cancel_external_order(None, "BTCUSDT", client_order_id=cid)
    assert root.reconcile("periodic").get(timeout=_WAIT_S) == 1
    assert _settle(engine, lambda: root.tracked_open_orders(BTC).get(timeout=_WAIT_S) == [])
    stored, fills = _stored(engine, cid)
    assert stored is not None and stored.status is OrderStatus.CANCELED
    assert sum(f.quantity for f in fills) == Decimal("0.005")
    assert [(o["symbol"], o["status"]) for o in sim.control.ledger()["orders"]] == [("BTCUSDT", "CANCELED")]


def test_the_answer_to_a_create_of_the_dead_actor_reaches_the_tracking_only_book(
    start: Any, sim: HoldingSimulator
) -> None:
    engine = start()
    # The exchange takes the order but holds its answer back until the actor died past the budget.
    held = sim.hold("POST", "/api/v3/order")
    future = engine.place_order(BTC, "buy", "0.01", "59950")
    assert held.wait_held(_WAIT_S), "the create never reached the exchange"
    exhaust_restart_budget(engine, BTC)
    assert engine.halted
    held.release()
    outcome = future.result(timeout=_WAIT_S)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.OUTCOME_UNKNOWN, outcome
    root = engine._root.proxy()
    assert root.gateway.get(timeout=_WAIT_S).idle(_WAIT_S)  # the answer came (to the book's stable address)
    root.pair_refs().get(timeout=_WAIT_S)  # barrier: the root applied it before this
    [tracked] = root.tracked_open_orders(BTC).get(timeout=_WAIT_S)
    assert tracked.status is OrderStatus.OPEN and tracked.exchange_order_id is not None
