"""The shutdown under `on_shutdown = cancel`, through the whole engine against the simulator: what `Engine.stop`
says it did, and what it stores of its cancels.

The summary counts orders by what the exchange answered, each once: `canceled` (the exchange confirmed the
cancel), `open` (not terminal: the cancel failed or was not answered), `ended_otherwise` (filled meanwhile, …);
requests withdrawn before anything of them reached the exchange are `withdrawn`, not canceled orders. The cancel
is stored as the shutdown's, not the caller's: the trade's note and `requests.canceled` (what a restart reads to
resume no fallback) say so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from db import connect, get_trade, request_of
from engine.api import Accepted, Engine, Placement, Refusal, RefusalReason
from engine.domain import Pair
from sim import Simulator
from tests.actors._crashes import BTC, ETH, exhaust_restart_budget, manual_engine, two_pair_sim

_SHUTDOWN = "canceled at shutdown (on_shutdown = cancel)"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with two_pair_sim() as simulator:
        yield simulator


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Engine]]:
    # The shutdown waits this long for cancels that will not be confirmed (vanished orders): not 15 s a wait here.
    monkeypatch.setattr("actors._supervision._ASK_TIMEOUT_S", 3.0)
    engines: list[Engine] = []

    def _start(on: Simulator, **execution: str) -> Engine:
        engine = manual_engine(on, tmp_path, **execution)
        engines.append(engine)
        return engine

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


def _resting(engine: Engine, pair: Pair, price: str, amount: str = "0.01") -> Accepted:
    outcome = engine.place_order(pair, "buy", amount, price).result(timeout=20)
    assert isinstance(outcome, Accepted), outcome
    return outcome


def _statuses(sim: Simulator) -> list[str]:
    return [str(o["status"]) for o in sim.control.ledger()["orders"]]


def _read(tmp_path: Path, fn: Any, *args: Any) -> Any:
    handle = connect(f"sqlite:///{tmp_path}/engine.sqlite3")
    try:
        return fn(handle, *args)
    finally:
        handle.close()


def test_orders_that_vanished_at_the_exchange_are_counted_open_once_not_also_canceled(
    start: Any, sim: Simulator
) -> None:
    first = start(sim)
    _resting(first, BTC, "59950")
    _resting(first, ETH, "2990", "0.1")
    first.stop(graceful=False)  # leaves them resting, as a crash would
    with two_pair_sim() as reset:  # an exchange that never saw them (a reset test exchange, another account)
        second = start(reset)
        assert second.health()["recovery"]["requests_resumed"] == 2
        summary = second.stop()
    # Both cancels failed (-2011) and nothing confirmed an end: two orders left open, none canceled. It said
    # {'canceled': 2, 'open': 2}: the same two orders counted twice.
    assert summary == {"canceled": 0, "open": 2}


def test_queued_requests_are_withdrawn_not_counted_as_canceled_orders(start: Any, sim: Simulator) -> None:
    engine = start(sim, conflict_policy="queue")
    _resting(engine, BTC, "59950")
    queued: list[Placement] = [engine.place_order(BTC, "sell", "0.01", "61000") for _ in range(2)]
    active = engine.active_requests(BTC)  # a barrier too: both are queued in the book
    assert all(p.request_id in active for p in queued)
    summary = engine.stop()
    assert summary == {"canceled": 1, "open": 0, "withdrawn": 2}  # it said canceled: 3
    assert _statuses(sim) == ["CANCELED"]  # nothing of the queued ones was sent
    for placement in queued:
        outcome = placement.result(timeout=20)
        assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.CANCELED, outcome
        assert outcome.message.startswith(_SHUTDOWN), outcome.message


def test_an_order_filled_before_its_cancel_counts_as_ended_otherwise(start: Any, sim: Simulator) -> None:
    engine = start(sim)
    btc = _resting(engine, BTC, "59950")
    _resting(engine, ETH, "2990", "0.1")
    # No user stream: the engine learns of the fill from its cancel's -2011 and the status lookup after it.
    sim.control.fill_order("BTCUSDT", client_order_id=btc.order.client_order_id)
    summary = engine.stop()
    assert summary == {"canceled": 1, "open": 0, "ended_otherwise": 1}, summary
    assert sorted(_statuses(sim)) == ["CANCELED", "FILLED"]


def test_a_halted_pairs_order_whose_cancel_failed_is_counted_once(start: Any, sim: Simulator) -> None:
    engine = start(sim)
    btc = _resting(engine, BTC, "59950")
    exhaust_restart_budget(engine, BTC)
    sim.control.fill_order("BTCUSDT", client_order_id=btc.order.client_order_id)
    # The root runs the halted book: its cancel fails (-2011), and the status lookup that would tell how it ended
    # is not sent once the shutdown began. Open (not confirmed), once; it was counted canceled and open.
    assert engine.stop() == {"canceled": 0, "open": 1}


def test_the_shutdowns_cancel_is_stored_as_the_shutdowns_not_the_callers(
    start: Any, sim: Simulator, tmp_path: Path
) -> None:
    engine = start(sim)
    eth = _resting(engine, ETH, "2990", "0.1")
    btc = _resting(engine, BTC, "59950")
    exhaust_restart_budget(engine, BTC)  # its book is run by the root: the other path of the shutdown's cancel
    assert engine.stop() == {"canceled": 2, "open": 0}
    for accepted in (eth, btc):
        request_id = accepted.order.request_id
        stored = _read(tmp_path, request_of, request_id)
        # Still set (a restart resumes no fallback for it), with the true reason.
        assert stored is not None and stored.canceled == _SHUTDOWN, stored
        trade = _read(tmp_path, get_trade, request_id)
        assert trade is not None and _SHUTDOWN in trade.note and "by the caller" not in trade.note, trade
