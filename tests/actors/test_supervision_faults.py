"""The root survives its pair actors dying: in the restart window (dead, `child_failed` not yet handled) and
past the restart budget (dead for good), and its timers do nothing once shutdown has stopped them.

A pair actor stopped with `stop()` is the restart window held open: it is dead, but it never reports a crash,
so the root still has its dead ref in `_pairs` and routing. Every wait is an ask through the root's inbox or
the gateway's idle barrier, never a sleep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.api import Accepted, Engine
from engine.domain import OrderStatus, Pair
from engine.gateway import GatewayRequest, GatewayResult, Op
from sim import Simulator
from tests.actors._crashes import BTC, ETH, exhaust_restart_budget, manual_engine, two_pair_sim


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with two_pair_sim() as simulator:
        yield simulator


@pytest.fixture
def start(sim: Simulator, tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def _start(on_shutdown: str = "cancel") -> Engine:
        engine = manual_engine(sim, tmp_path, on_shutdown=on_shutdown)
        engines.append(engine)
        return engine

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


def _resting_eth_order(engine: Engine) -> Accepted:
    outcome = engine.place_order(ETH, "buy", "0.1", "2990").result(timeout=20)
    assert isinstance(outcome, Accepted), outcome
    return outcome


def _kill_quietly(engine: Engine, pair: Pair) -> Any:
    """Stop `pair`'s actor without a crash report: the restart window, held open."""
    ref = engine._routing.get(pair).actor_ref
    assert ref.stop(timeout=10)
    return ref


def _sim_status(sim: Simulator, symbol: str) -> list[str]:
    return [str(o["status"]) for o in sim.control.ledger()["orders"] if o["symbol"] == symbol]


def test_every_root_path_skips_a_pair_actor_dead_in_its_restart_window(start: Any) -> None:
    engine = start()
    eth = _resting_eth_order(engine)
    dead = _kill_quietly(engine, BTC)
    root = engine._root.proxy()
    # A price poll answer, an openOrders answer and a reconciliation round, each reaching the dead BTC actor.
    root.on_prices([{"symbol": "BTCUSDT", "bidPrice": "59990", "askPrice": "60010"}]).get(timeout=10)
    scan = GatewayResult(GatewayRequest(Op.OPEN_ORDERS, {"symbol": "BTCUSDT"}), data=[])
    root.on_open_orders(BTC, scan).get(timeout=10)
    assert root.reconcile("test").get(timeout=20) == 1  # the live ETH order is still queried
    assert engine._root.is_alive()
    assert engine.health()["pairs"] == {BTC: False, ETH: True}

    root.child_failed(BTC).get(timeout=10)  # the crash report arrives: restarted, routing updated
    assert engine._routing.get(BTC).actor_ref is not dead and engine._routing.get(BTC).actor_ref.is_alive()
    assert [o.client_order_id for o in engine.open_orders(ETH)] == [eth.order.client_order_id]


def test_shutdown_skips_a_dead_pair_and_still_cancels_the_live_ones(start: Any, sim: Simulator) -> None:
    engine = start()
    _resting_eth_order(engine)
    _kill_quietly(engine, BTC)
    summary = engine.stop()
    # BTC's orders are not known here (its actor is dead): the summary says a pair did not answer rather than
    # counting it as nothing left open.
    assert summary == {"canceled": 1, "open": 0, "unanswered": 1}
    assert _sim_status(sim, "ETHUSDT") == ["CANCELED"]


def test_past_the_budget_the_root_keeps_running_and_shutdown_cancels_the_other_pairs(
    start: Any, sim: Simulator
) -> None:
    engine = start()
    _resting_eth_order(engine)
    btc = engine.place_order(BTC, "buy", "0.01", "59950").result(timeout=20)
    assert isinstance(btc, Accepted), btc
    exhaust_restart_budget(engine, BTC)
    root = engine._root.proxy()

    engine.ticker.advance(1_000)  # the bookTicker poll: its answer is told to the root, which tells the pairs
    assert root.gateway.get(timeout=10).idle(30)
    root.pair_refs().get(timeout=10)  # barrier: the poll's answer was handled before this
    # ETH's order through its actor, and the halted BTC order through the root's tracking-only book.
    assert root.reconcile("test").get(timeout=20) == 2
    assert root.gateway.get(timeout=10).idle(30)
    root.pair_refs().get(timeout=10)  # barrier: the lookups' answers were applied before this
    assert engine._root.is_alive()
    health = engine.health()
    assert health["halted"] and health["halt_reason"] == "restart budget exhausted"
    assert health["pairs"] == {BTC: False, ETH: True}
    # The halted pair's book is tracked by the root now: its open order is still known.
    tracked = root.tracked_open_orders(BTC).get(timeout=10)
    assert [o.client_order_id for o in tracked] == [btc.order.client_order_id]
    assert [o.client_order_id for o in engine.open_orders(BTC)] == [btc.order.client_order_id]  # the facade too

    summary = engine.stop()
    assert _sim_status(sim, "ETHUSDT") == ["CANCELED"]
    # The halted pair's order is canceled too (`on_shutdown = cancel`): the root runs its book, and its cancel's
    # answer is applied before the summary counts what is left open.
    assert summary == {"canceled": 2, "open": 0}
    assert _sim_status(sim, "BTCUSDT") == ["CANCELED"]


def test_past_the_budget_shutdown_with_keep_leaves_the_halted_pairs_order_open_and_counts_it(
    start: Any, sim: Simulator
) -> None:
    engine = start(on_shutdown="keep")
    btc = engine.place_order(BTC, "buy", "0.01", "59950").result(timeout=20)
    assert isinstance(btc, Accepted), btc
    exhaust_restart_budget(engine, BTC)
    assert engine.stop() == {"canceled": 0, "open": 1}
    assert _sim_status(sim, "BTCUSDT") == ["NEW"]


def test_a_callers_cancel_reaches_a_pair_halted_past_the_budget(start: Any, sim: Simulator) -> None:
    engine = start()
    btc = engine.place_order(BTC, "buy", "0.01", "59950").result(timeout=20)
    assert isinstance(btc, Accepted), btc
    exhaust_restart_budget(engine, BTC)
    root = engine._root.proxy()
    assert engine.halted
    engine.cancel_order(BTC, btc.order.request_id)  # the root carries it out: no RuntimeError
    assert root.gateway.get(timeout=10).idle(30)
    root.pair_refs().get(timeout=10)  # barrier: the cancel's answer was applied before this
    assert _sim_status(sim, "BTCUSDT") == ["CANCELED"]  # canceled, and nothing sent after it (no fallback)
    assert root.tracked_open_orders(BTC).get(timeout=10) == []
    detail = engine.order_detail(BTC, btc.order.client_order_id)
    assert detail is not None and detail.order.status is OrderStatus.CANCELED, detail
    assert detail.fallbacks == []
    # Its request is stored canceled by the caller: a restart sends no fallback for it.
    store = root.store().get(timeout=10)
    request = store.proxy.request_of(btc.order.request_id).get(timeout=10)
    assert request is not None and request.canceled == "canceled by the caller"
    assert engine.stop() == {"canceled": 0, "open": 0}


def test_timer_messages_queued_behind_shutdown_send_nothing(start: Any) -> None:
    engine = start(on_shutdown="keep")
    _resting_eth_order(engine)
    root = engine._root.proxy()
    gateway = root.gateway.get(timeout=10)
    shutdown = root.shutdown(False)
    # What a timer told just before shutdown took over lands behind it in the root's inbox (FIFO).
    late_round = root.reconcile("periodic")
    late_wallet = root.refresh_wallet()
    assert shutdown.get(timeout=30) == {"canceled": 0, "open": 1}
    sent = gateway.stats().sent
    assert late_round.get(timeout=10) == 0  # no lookup of the open order after the drain
    late_wallet.get(timeout=10)
    assert gateway.idle(30)
    assert gateway.stats().sent == sent


def test_a_timer_that_runs_after_shutdown_stopped_the_timers_neither_acts_nor_rearms(start: Any) -> None:
    engine = start()
    ticker = engine.ticker
    gateway = engine._root.proxy().gateway.get(timeout=10)
    # The ticker's thread takes the due timers off its queue (the bookTicker poll among them) and runs them
    # outside its lock: shutdown's cancel comes in between and finds nothing left to cancel.
    with ticker._cond:
        due = ticker._timers.pop_due(engine.clock.now_ms() + 1_000)
    assert due
    engine._root.proxy().shutdown(False).get(timeout=30)
    assert gateway.idle(30)
    sent = gateway.stats().sent
    for fire in due:
        fire(engine.clock.now_ms())
    assert gateway.idle(30)
    assert gateway.stats().sent == sent  # no price poll (nor anything else) sent after the drain
    assert ticker.pending() == 0  # and nothing re-armed


def test_the_shutdown_waits_are_bounded_in_elapsed_time_not_in_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    # 750 rounds whatever each costs: with a condition asking a stuck pair (15 s per ask) "15 s" became hours.
    from actors._supervision import SupervisionMixin

    now = [0.0]
    monkeypatch.setattr("actors._supervision.time.monotonic", lambda: now[0])
    calls = []

    def slow_condition() -> bool:
        calls.append(now[0])
        now[0] += 5.0  # each ask waits out its timeout
        return False

    assert SupervisionMixin._wait_until(slow_condition, 15.0) is False
    assert len(calls) <= 4
