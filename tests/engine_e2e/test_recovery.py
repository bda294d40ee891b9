"""Crash recovery and manual intervention through the whole engine against the simulator.

An engine is stopped without touching its orders (as a crash would leave them) and a new one starts on the
same database and the same exchange. Time is a manual clock shared across the restart, so a resumed limit
keeps exactly its remaining time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from db import BatchWriter, DatabaseInUseError, connect, fills_of, find_orders, get_trade, id_namespace, id_tag
from engine.api import Accepted, Engine, EngineEvent, EventKind
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.domain import (
    Order,
    OrderRequest,
    OrderRole,
    OrderStatus,
    OrderType,
    RequestRecord,
    Side,
    TradeStatus,
)
from engine.exchange import client_order_id
from sim import FaultSpec, SimConfig, Simulator
from tests.engine_e2e._engine_sim_helpers import settle
from tests.engine_e2e.test_engine_sim import Events

PAIR = "BTC/USDT"
LIMIT = "59950"
NO_STREAMS = {"user_data": False, "market_data": False}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(seed=5, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/engine.sqlite3"


@pytest.fixture
def start(sim: Simulator, tmp_path: Path, db_url: str) -> Iterator[Any]:
    engines: list[Engine] = []

    def _start(clock: ManualClock, pairs: list[str] | None = None) -> tuple[Engine, Events]:
        whitelist = pairs or [PAIR]
        config = Config.model_validate(
            {"stream": NO_STREAMS, "exchange": {"pair_whitelist": whitelist}, "execution": {"limit_timeout_s": "5"}}
        )
        events = Events()
        engine = Engine.start(
            config, clock=clock, sim=sim, database_url=db_url, spool_path=tmp_path / "spool.jsonl", listeners=[events]
        )
        engines.append(engine)
        return engine, events

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


def _bx_orders(sim: Simulator) -> list[dict[str, Any]]:
    return [o for o in sim.control.ledger()["orders"] if str(o["clientOrderId"]).startswith("bx-")]


def _stored(db_url: str) -> tuple[list[Order], Any]:
    handle = connect(db_url)
    try:
        return find_orders(handle), handle
    finally:
        handle.close()


def _flush(engine: Engine) -> None:
    """Wait until everything the engine handed to persistence is committed."""
    engine._root.proxy().store().get(timeout=10).flush().get(timeout=10)


def _read(db_url: str, fn: Any, *args: Any) -> Any:
    handle = connect(db_url)
    try:
        return fn(handle, *args)
    finally:
        handle.close()


def test_open_limit_resumes_with_its_remaining_time_then_falls_back(start: Any, sim: Simulator, db_url: str) -> None:
    clock = ManualClock(SystemClock().now_ms())
    first, _ = start(clock)
    accepted = first.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="resume-1").result(20)
    assert isinstance(accepted, Accepted)
    first.ticker.advance(3_000)
    first.stop(graceful=False)  # leaves the limit resting, like a crash

    second, events = start(ManualClock(clock.now_ms()))
    assert second.health()["recovery"]["requests_resumed"] == 1
    assert [o.client_order_id for o in second.open_orders()] == [accepted.order.client_order_id]
    second.ticker.advance(1_000)  # 4 s of its 5 s: still waiting
    assert [o["status"] for o in _bx_orders(sim)] == ["NEW"]
    second.ticker.advance(1_000)
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.status is TradeStatus.FILLED and done.trade.filled == Decimal("0.01")
    assert "resumed after a restart" in done.trade.note
    ledger = _bx_orders(sim)
    assert [o["status"] for o in ledger] == ["CANCELED", "FILLED"]
    assert ledger[1]["clientOrderId"].endswith("-f1")
    _flush(second)
    trade = _read(db_url, get_trade, accepted.order.request_id)
    assert trade is not None and trade.filled == Decimal("0.01")


def test_a_second_engine_on_the_same_database_is_refused_and_leaves_the_first_ones_orders_alone(
    start: Any, sim: Simulator, db_url: str
) -> None:
    # It would have taken the running engine's requests for a crash's leftovers: resumed them, closed its live
    # orders as vanished, and canceled them when it stopped (a second daemon whose port was taken did).
    clock = ManualClock(SystemClock().now_ms())
    first, _ = start(clock)
    accepted = first.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="two-engines").result(20)
    assert isinstance(accepted, Accepted)
    with pytest.raises(DatabaseInUseError, match="another engine is using the database"):
        start(ManualClock(clock.now_ms()))
    assert [o["status"] for o in _bx_orders(sim)] == ["NEW"]
    assert [o.client_order_id for o in first.open_orders()] == [accepted.order.client_order_id]
    first.stop(graceful=False)
    second, _ = start(ManualClock(clock.now_ms()))  # the first one stopped: its lock went with it
    assert second.health()["recovery"]["requests_resumed"] == 1


def test_a_callers_cancel_that_failed_before_a_crash_is_still_a_cancel_after_it(
    start: Any, sim: Simulator, db_url: str
) -> None:
    # The cancel is refused (the limit is open again, its retry waits) and the engine dies; it comes back after
    # the limit's deadline. Before schema 6 the limit then looked like a working one whose time was up: canceled
    # and followed by a market order for the whole amount the caller had canceled.
    clock = ManualClock(SystemClock().now_ms())
    first, first_events = start(clock)
    accepted = first.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="cancel-crash").result(20)
    assert isinstance(accepted, Accepted)
    cid = accepted.order.client_order_id
    sim.control.add_fault(
        FaultSpec(kind="http_error", target="DELETE /api/v3/order", count=1, status=401, code=-2015,
                  msg="Invalid API-key, IP, or permissions for action.", execute=False)
    )  # fmt: skip
    first.cancel_order(PAIR, accepted.order.request_id)
    [error] = first_events.wait_for(EventKind.ERROR)
    assert error.client_order_id == cid
    # The event may reach the bus before its pair actor told persistence the order is open again: settle asks the
    # actor (done with that message) before it flushes the store.
    settle_all(first)
    stored, _ = _stored(db_url)
    assert [o.status for o in stored] == [OrderStatus.OPEN]  # the refused cancel set it back
    first.stop(graceful=False)

    _second, events = start(ManualClock(clock.now_ms() + 60_000))  # the 5 s deadline is long past
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.status is TradeStatus.CANCELED and done.trade.filled == 0
    assert "canceled by the caller" in done.trade.note
    assert [o["status"] for o in _bx_orders(sim)] == ["CANCELED"]  # and no fallback order
    assert not events.of(EventKind.FALLBACK)


def test_a_fill_while_down_is_fetched_at_restart(start: Any, sim: Simulator, db_url: str) -> None:
    clock = ManualClock(SystemClock().now_ms())
    first, _ = start(clock)
    accepted = first.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="down-1").result(20)
    assert isinstance(accepted, Accepted)
    first.stop(graceful=False)
    cid = accepted.order.client_order_id
    sim.control.fill_order("BTCUSDT", client_order_id=cid, quantity="0.004")
    sim.control.fill_order("BTCUSDT", client_order_id=cid)

    second, events = start(ManualClock(clock.now_ms()))
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.status is TradeStatus.FILLED
    _flush(second)
    order_id = accepted.order.exchange_order_id
    ledger_trades = sorted(t["id"] for t in sim.control.ledger()["trades"] if t["orderId"] == order_id)
    stored = sorted(f.trade_id for f in _read(db_url, fills_of, cid))
    assert stored == ledger_trades and len(stored) == 2
    assert len(_bx_orders(sim)) == 1  # no fallback: the limit filled


def _write_intent(
    db_url: str, key: str, now_ms: int, *, pair: str = PAIR, price: str = LIMIT, amount: str = "0.01",
    timeout_s: int = 60, **order: Any,
) -> Order:  # fmt: skip
    """What the database holds after a crash between the write-ahead and the send."""
    when = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    request = OrderRequest(
        request_id=f"crashed-{key}", pair=pair, side=Side.BUY, amount=Decimal(amount), price=Decimal(price),
        idempotency_key=key, created_at=when, limit_timeout_s=Decimal(timeout_s),
    )  # fmt: skip
    order = Order(
        client_order_id=client_order_id(key, pair=pair), request_id=f"crashed-{key}", pair=pair, side=Side.BUY,
        order_type=OrderType.LIMIT, status=OrderStatus.PENDING_SUBMIT, price=Decimal(price), amount=Decimal(amount),
        remaining=Decimal(amount), created_at=when, updated_at=when,
    ).model_copy(update=order)  # fmt: skip
    handle = connect(db_url)
    try:
        BatchWriter(handle).write([RequestRecord(request=request, reference_price=Decimal(price)), order])
    finally:
        handle.close()
    return order


def settle_all(engine: Engine) -> None:
    """Barrier: what the engine was set off to do has run out, the root's tracking-only book included, and every
    event it published has reached the bus's listeners. No wall-clock wait: each step is an ask or the gateway idle.
    """
    root = engine._root.proxy()
    gateway = root.gateway.get(timeout=10)
    for _ in range(50):
        before = gateway.stats()
        settle(engine)  # the gateway idle, the pair actors and the store caught up
        root.pair_refs().get(timeout=10)  # the root handled the answers told to it (pairs it tracks itself)
        after = gateway.stats()
        if (after.sent, after.failed, after.queued, after.in_flight) == (before.sent, before.failed, 0, 0):
            break
    else:
        raise AssertionError("the engine did not settle")
    # Published before the asks above returned: each listener (its own inbox, in order) has been called before this.
    for listener in root.bus().get(timeout=10).listeners().get(timeout=10):
        listener.proxy().caught_up().get(timeout=10)


def _advance_until(engine: Engine, events: Events, kind: EventKind, step_ms: int, steps: int) -> list[EngineEvent]:
    for _ in range(steps):
        if events.of(kind):
            break
        engine.ticker.advance(step_ms)
        settle_all(engine)  # each step's consequences run out before time moves on
    return events.wait_for(kind)


def test_an_intent_never_sent_is_placed_exactly_once(start: Any, sim: Simulator, db_url: str) -> None:
    clock = ManualClock(SystemClock().now_ms())
    order = _write_intent(db_url, "never-sent", clock.now_ms(), timeout_s=600)  # its limit outlives the grace
    engine, events = start(clock)
    # "not found" proves nothing during the grace period; after it the create goes out under the same id
    [accepted] = _advance_until(engine, events, EventKind.ACCEPTED, 2_000, 40)  # past the 60 s grace
    assert accepted.client_order_id == order.client_order_id
    assert [o["clientOrderId"] for o in _bx_orders(sim)] == [order.client_order_id]


def test_an_intent_stored_long_before_the_crash_still_waits_the_grace_from_the_restart(
    start: Any, sim: Simulator, db_url: str
) -> None:
    # Its create may have left the gateway just before the crash (held there by a Retry-After or a full order
    # window), so REST may still lag it: "not found" proves nothing until the grace has passed since the restart.
    clock = ManualClock(SystemClock().now_ms())
    order = _write_intent(db_url, "long-ago", clock.now_ms() - 600_000, timeout_s=3600)
    engine, events = start(clock)
    for _ in range(25):  # 50 s of lookups answered "not found"
        engine.ticker.advance(2_000)
        settle_all(engine)
    assert events.of(EventKind.ACCEPTED) == [] and _bx_orders(sim) == []
    [accepted] = _advance_until(engine, events, EventKind.ACCEPTED, 2_000, 20)
    assert accepted.client_order_id == order.client_order_id
    assert [o["clientOrderId"] for o in _bx_orders(sim)] == [order.client_order_id]


def test_an_intent_that_did_reach_the_exchange_is_found_not_resent(start: Any, sim: Simulator, db_url: str) -> None:
    clock = ManualClock(SystemClock().now_ms())
    order = _write_intent(db_url, "was-sent", clock.now_ms())
    sim.control.place_external_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=LIMIT,
        newClientOrderId=order.client_order_id,
    )  # fmt: skip
    engine, events = start(clock)
    [accepted] = events.wait_for(EventKind.ACCEPTED)
    assert accepted.order is not None and accepted.order.status is OrderStatus.OPEN
    assert len(_bx_orders(sim)) == 1
    engine.ticker.advance(60_000)  # its limit timeout, counted from the stored request
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.status is TradeStatus.FILLED
    assert len(_bx_orders(sim)) == 2


def test_an_idempotency_key_used_before_the_restart_finds_its_order(start: Any, sim: Simulator) -> None:
    clock = ManualClock(SystemClock().now_ms())
    first, first_events = start(clock)
    original = first.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="key-across-restart").result(20)
    assert isinstance(original, Accepted)
    first.ticker.advance(5_000)
    first_events.wait_for(EventKind.DONE)
    first.stop(graceful=False)

    second, _ = start(ManualClock(clock.now_ms()))
    replay = second.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="key-across-restart").result(20)
    assert isinstance(replay, Accepted) and replay.duplicate
    assert replay.order.client_order_id == original.order.client_order_id
    assert len(_bx_orders(sim)) == 2  # the limit and its fallback, nothing new


def test_external_orders_are_recorded_announced_and_tracked(start: Any, sim: Simulator, db_url: str) -> None:
    engine, events = start(ManualClock(SystemClock().now_ms()))
    sim.control.place_external_order(
        symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.02", price="61000",
        newClientOrderId="web_manual_1",
    )  # fmt: skip
    engine.ticker.advance(60_000)  # the periodic reconciliation scans open orders
    [seen] = events.wait_for(EventKind.EXTERNAL)
    assert seen.client_order_id == "web_manual_1" and "external order" in seen.message
    assert isinstance(engine.place_order(PAIR, "buy", "0.01", LIMIT).result(20), Accepted)  # trading goes on
    sim.control.cancel_external_order(None, "BTCUSDT", client_order_id="web_manual_1")
    engine.ticker.advance(60_000)  # the next round scans the open orders, then looks up the one not listed
    root = engine._root.proxy()
    for _ in range(10):  # the scan's answer sends the lookup: a round of barriers may end between the two
        root.pair_refs().get(timeout=10)  # barrier: what was told to the root was handled (lookups submitted)
        assert root.gateway.get(timeout=10).idle(30)
        engine.open_orders()  # barrier: the pair actor applied the lookups' answers before answering this
        _flush(engine)
        stored: dict[str, Order] = {o.client_order_id: o for o in _stored(db_url)[0]}
        if stored["web_manual_1"].status is OrderStatus.CANCELED:
            break
    external = stored["web_manual_1"]
    assert external.role is OrderRole.EXTERNAL and external.status is OrderStatus.CANCELED
    assert len(events.of(EventKind.EXTERNAL)) == 1  # announced once


def test_an_engine_order_unknown_to_the_database_is_adopted(start: Any, sim: Simulator, db_url: str) -> None:
    engine, events = start(ManualClock(SystemClock().now_ms()))
    handle = connect(db_url)
    try:  # an id this database made (its namespace and tag), for a request its backup lost
        stray = client_order_id(
            "lost-by-a-restored-backup", pair=PAIR, namespace=id_namespace(handle), tag=id_tag(handle)
        )
    finally:
        handle.close()
    sim.control.place_external_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="59000",
        newClientOrderId=stray,
    )  # fmt: skip
    engine.ticker.advance(60_000)
    [seen] = events.wait_for(EventKind.EXTERNAL)
    assert seen.client_order_id == stray and "unknown to the database" in seen.message
    assert any(o.client_order_id == stray for o in engine.open_orders())


def test_a_market_order_right_after_start_is_not_refused_for_want_of_a_price(start: Any, sim: Simulator) -> None:
    # The prices are read before the first request can arrive (they used to come a second later).
    engine, events = start(ManualClock(SystemClock().now_ms()))
    outcome = engine.place_order(PAIR, "buy", "0.01", order_type="market").result(20)
    assert isinstance(outcome, Accepted), outcome
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.status is TradeStatus.FILLED


def test_an_engine_limit_canceled_from_outside_stops_its_fallback_and_says_so(start: Any, sim: Simulator) -> None:
    alerts: list[str] = []
    sink = logger.add(lambda m: alerts.append(m.record["extra"]["alert"]), filter=lambda r: "alert" in r["extra"])
    try:
        engine, events = start(ManualClock(SystemClock().now_ms()))
        accepted = engine.place_order(PAIR, "buy", "0.01", LIMIT, limit_timeout=600).result(20)
        assert isinstance(accepted, Accepted)
        sim.control.cancel_external_order(None, "BTCUSDT", client_order_id=accepted.order.client_order_id)
        engine.ticker.advance(60_000)  # the periodic reconciliation looks the order up: canceled
        [done] = events.wait_for(EventKind.DONE)
    finally:
        logger.remove(sink)
    assert done.trade is not None and done.trade.status is TradeStatus.CANCELED
    assert "canceled outside the engine" in done.trade.note
    assert len(_bx_orders(sim)) == 1  # no fallback
    assert "external_cancel" in alerts


def test_an_acknowledged_order_the_exchange_does_not_know_is_closed_without_a_fallback(
    start: Any, sim: Simulator, db_url: str
) -> None:
    # e.g. a database from another account, or a test exchange that was reset: nothing is traded on a guess
    clock = ManualClock(SystemClock().now_ms())
    _write_intent(db_url, "vanished", clock.now_ms(), status=OrderStatus.OPEN, exchange_order_id=987654321)
    alerts: list[str] = []
    sink = logger.add(lambda m: alerts.append(m.record["extra"]["alert"]), filter=lambda r: "alert" in r["extra"])
    try:
        engine, events = start(clock)
        [done] = _advance_until(engine, events, EventKind.DONE, 1_000, 90)  # a minute unseen by REST
    finally:
        logger.remove(sink)
    assert done.trade is not None and done.trade.status is TradeStatus.CANCELED
    assert "does not know" in done.trade.note and "order_vanished" in alerts
    assert _bx_orders(sim) == [] and engine.open_orders() == []
    assert engine.stop()["open"] == 0


def test_the_database_section_tunes_persistence(sim: Simulator, tmp_path: Path, db_url: str) -> None:
    # `[database] batch_size` reached the persistence actor: with 1, a record commits as it arrives. The manual
    # clock never ticks, so with the default (500) the acknowledged order would still read as its intent.
    config = Config.model_validate(
        {"stream": NO_STREAMS, "exchange": {"pair_whitelist": [PAIR]}, "database": {"batch_size": 1}}
    )
    engine = Engine.start(config, clock=ManualClock(SystemClock().now_ms()), sim=sim, database_url=db_url,
                          spool_path=tmp_path / "spool.jsonl")  # fmt: skip
    try:
        accepted = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="tuned").result(20)
        assert isinstance(accepted, Accepted)
        # The pair actor answers a query only after it told persistence the ack's records (the caller's future
        # may resolve just before); a health ask told after that is answered after them (and commits nothing).
        assert [o.client_order_id for o in engine.open_orders()] == [accepted.order.client_order_id]
        engine._root.proxy().store().get(timeout=10).proxy.health().get(timeout=10)
        stored, _ = _stored(db_url)
        assert [o.status for o in stored] == [OrderStatus.OPEN]
    finally:
        engine.stop(graceful=False)
