"""`Engine.cancel_order`'s answer when the pair's actor does not run it: a pair halted past the restart budget (the
root runs its book and answers as the pair would: `cancel_sent`, `already_done`, `unknown_request`), a pair actor
in its restart window (`unavailable`, retry), and a cancel left queued behind the actor's stop (`shutting_down`,
never a future left unanswered). Real ccxt against the simulator; waits are asks or events, never sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.api import Accepted, CancelStatus, Engine, EngineEvent, EventKind
from engine.domain import TradeStatus
from sim import Simulator
from tests.actors._crashes import BTC, exhaust_restart_budget, manual_engine, two_pair_sim


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with two_pair_sim() as simulator:
        yield simulator


@pytest.fixture
def engine(sim: Simulator, tmp_path: Path) -> Iterator[Engine]:
    started = manual_engine(sim, tmp_path)
    try:
        yield started
    finally:
        started.stop(graceful=False)


def _btc_statuses(sim: Simulator) -> list[str]:
    return [str(o["status"]) for o in sim.control.ledger()["orders"] if o["symbol"] == "BTCUSDT"]


def _wait_for(engine: Engine, predicate: Callable[[EngineEvent], bool]) -> threading.Event:
    seen = threading.Event()
    engine.subscribe(lambda event: seen.set() if predicate(event) else None)
    return seen


def test_a_halted_pairs_cancel_is_answered_by_the_root(engine: Engine, sim: Simulator) -> None:
    resting = engine.place_order(BTC, "buy", "0.01", "59950").result(timeout=20)
    assert isinstance(resting, Accepted), resting
    exhaust_restart_budget(engine, BTC)
    outcome = engine.cancel_order(BTC, resting.order.request_id).result(timeout=20)
    assert outcome.status is CancelStatus.CANCEL_SENT, outcome
    assert outcome.client_order_ids == (resting.order.client_order_id,)
    root = engine._root.proxy()
    assert root.gateway.get(timeout=10).idle(30)
    root.pair_refs().get(timeout=10)  # barrier: the cancel's answer was applied before this
    assert _btc_statuses(sim) == ["CANCELED"]  # and nothing after it: no fallback


def test_a_halted_pair_answers_unknown_and_finished_requests_from_the_database(engine: Engine) -> None:
    done = _wait_for(engine, lambda e: e.kind is EventKind.DONE and e.pair == BTC)
    filled = engine.place_order(BTC, "buy", "0.01", "61000").result(timeout=20)  # marketable: fills at once
    assert isinstance(filled, Accepted), filled
    assert done.wait(20), "the filled request never ended"
    exhaust_restart_budget(engine, BTC)
    finished = engine.cancel_order(BTC, filled.order.request_id).result(timeout=20)
    assert finished.status is CancelStatus.ALREADY_DONE and finished.final_status is TradeStatus.FILLED, finished
    unknown = engine.cancel_order(BTC, "no-such-request").result(timeout=20)
    assert unknown.status is CancelStatus.UNKNOWN_REQUEST, unknown


def test_a_pair_actor_in_its_restart_window_is_unavailable_and_says_retry(engine: Engine) -> None:
    # Stopped without a crash report: dead, and nobody restarts it yet (the restart window, held open).
    assert engine._routing.get(BTC).actor_ref.stop(timeout=10)
    outcome = engine.cancel_order(BTC, "any-request").result(timeout=20)
    assert outcome.status is CancelStatus.UNAVAILABLE and not outcome.canceling, outcome
    assert outcome.details == {"retry": "1", "cause": "restarting"}


def test_a_cancel_queued_behind_the_actors_stop_is_answered_shutting_down(engine: Engine) -> None:
    # The actor is held inside an inline listener (its own thread) while its stop, then a cancel, are queued: the
    # cancel is in its inbox when it stops. pykka drops such a tell; its caller must still hear.
    entered, release = threading.Event(), threading.Event()

    def hold(event: EngineEvent) -> None:
        if event.kind is EventKind.ACCEPTED and event.pair == BTC and not entered.is_set():
            entered.set()
            release.wait(20)

    engine.subscribe(hold, inline=True)
    placed = engine.place_order(BTC, "buy", "0.01", "59950")
    assert entered.wait(20), "the pair actor never reached the listener"
    ref = engine._routing.get(BTC).actor_ref
    stopped = ref.stop(block=False)
    cancellation = engine.cancel_order(BTC, placed.request_id)
    assert not cancellation.done()
    release.set()
    stopped.get(timeout=20)
    outcome = cancellation.result(timeout=20)
    assert outcome.status is CancelStatus.SHUTTING_DOWN, outcome
    assert isinstance(placed.result(timeout=20), Accepted)
