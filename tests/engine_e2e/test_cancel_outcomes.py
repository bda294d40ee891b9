"""`Engine.cancel_order` says what it did, against the simulator with the real ccxt client: a resting limit's cancel
is `cancel_sent` (answered once the cancel is queued, before the exchange confirms it with a `canceled` event, and
no fallback follows), a finished request that left memory is `already_done` with its final status (from the
database), and an id the pair never had — a typo, or another pair's request — is `unknown_request`. The pure
book's answers (a cancel at the ack, a request withdrawn, one finished still in memory) are in
tests/pair/test_cancel_answers.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.api import Accepted, Cancellation, CancelOutcome, CancelStatus, Engine, EventKind
from engine.domain import Pair, TradeStatus
from sim import SimConfig, Simulator
from tests.engine_e2e._stack import Recorder, engine_on, sim_orders

BTC, ETH = "BTC/USDT", "ETH/USDT"
CONFIG = {
    "stream": {"user_data": False, "market_data": False},
    "exchange": {"pair_whitelist": [BTC, ETH]},
    "execution": {"limit_timeout_s": "600"},
}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Engine, Recorder, Simulator]]:
    prices = {"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    with (
        Simulator(SimConfig(seed=7, symbols=list(prices), start_prices=prices)) as sim,
        engine_on(sim, tmp_path, CONFIG) as (engine, events),
    ):
        yield engine, events, sim


def _done(events: Recorder, request_id: str) -> None:
    events.wait(lambda r: any(e.request_id == request_id for e in r.of(EventKind.DONE)), what=f"done {request_id}")


def _filled_and_forgotten(engine: Engine, events: Recorder, pair: str, price: str) -> Accepted:
    """A marketable limit: filled at once, its trade stored and the request gone from its pair's memory."""
    accepted = engine.place_order(pair, "buy", "0.01", price).result(timeout=20)
    assert isinstance(accepted, Accepted), accepted
    _done(events, accepted.order.request_id)
    engine.active_requests(pair)  # a barrier through the pair actor: the message that finished it is over
    book = engine._routing.get(Pair(pair))._actor._book
    assert book.execution(accepted.order.request_id) is None, "still in memory: the database path is not tested"
    return accepted


def test_an_unknown_request_id_is_unknown_request_and_nothing_is_sent(rig: Any) -> None:
    engine, _events, sim = rig
    cancellation = engine.cancel_order(BTC, "no-such-request")
    assert isinstance(cancellation, Cancellation)
    assert (cancellation.pair, cancellation.request_id) == (BTC, "no-such-request")
    outcome = cancellation.result(timeout=20)
    assert isinstance(outcome, CancelOutcome)
    assert outcome.status is CancelStatus.UNKNOWN_REQUEST and not outcome.canceling, outcome
    assert "no request no-such-request on BTC/USDT" in outcome.message
    assert sim_orders(sim) == []


def test_another_pairs_request_is_unknown_on_this_pair(rig: Any) -> None:
    engine, events, _sim = rig
    eth = _filled_and_forgotten(engine, events, ETH, "3100")
    outcome = engine.cancel_order(BTC, eth.order.request_id).result(timeout=20)
    assert outcome.status is CancelStatus.UNKNOWN_REQUEST, outcome
    assert "it is a request of ETH/USDT" in outcome.message


def test_a_resting_limit_is_cancel_sent_then_canceled_with_no_fallback(rig: Any) -> None:
    engine, events, sim = rig
    accepted = engine.place_order(BTC, "buy", "0.01", "59000").result(timeout=20)
    assert isinstance(accepted, Accepted), accepted
    request_id, cid = accepted.order.request_id, accepted.order.client_order_id
    holder: list[Cancellation] = []
    answered_first: list[bool] = []
    heard = threading.Event()

    def on_event(event: Any) -> None:  # each listener has its own thread: this one is waited for on its own
        if event.kind is EventKind.CANCELED and event.request_id == request_id:
            answered_first.append(bool(holder) and holder[0].done())
            heard.set()

    engine.subscribe(on_event)
    holder.append(engine.cancel_order(BTC, request_id))
    outcome = holder[0].result(timeout=20)
    assert outcome.status is CancelStatus.CANCEL_SENT and outcome.canceling, outcome
    assert outcome.client_order_ids == (cid,) and outcome.at_ack == ()
    assert "no fallback follows" in outcome.message
    _done(events, request_id)
    assert heard.wait(20), "the canceled event never reached the listener"
    # Answered when the cancel was queued, before the exchange's confirmation reached anyone.
    assert answered_first == [True]
    kinds = [e.kind for e in events.items if e.request_id == request_id]
    assert kinds == [EventKind.ACCEPTED, EventKind.CANCELED, EventKind.DONE], kinds
    [done] = [e for e in events.of(EventKind.DONE) if e.request_id == request_id]
    assert done.trade is not None and done.trade.status is TradeStatus.CANCELED
    assert [(o["clientOrderId"], o["status"]) for o in sim_orders(sim)] == [(cid, "CANCELED")]  # no fallback


def test_a_finished_request_that_left_memory_is_already_done_with_its_status(rig: Any) -> None:
    engine, events, sim = rig
    filled = _filled_and_forgotten(engine, events, BTC, "61000")
    sent = len(sim_orders(sim))
    outcome = engine.cancel_order(BTC, filled.order.request_id).result(timeout=20)
    assert outcome.status is CancelStatus.ALREADY_DONE and not outcome.canceling, outcome
    assert outcome.final_status is TradeStatus.FILLED and "already finished (filled)" in outcome.message
    assert len(sim_orders(sim)) == sent


def test_a_canceled_request_canceled_again_is_already_done_canceled(rig: Any) -> None:
    engine, events, _sim = rig
    accepted = engine.place_order(BTC, "buy", "0.01", "59000").result(timeout=20)
    assert isinstance(accepted, Accepted), accepted
    first = engine.cancel_order(BTC, accepted.order.request_id).result(timeout=20)
    assert first.status is CancelStatus.CANCEL_SENT, first
    _done(events, accepted.order.request_id)
    again = engine.cancel_order(BTC, accepted.order.request_id).result(timeout=20)
    assert again.status is CancelStatus.ALREADY_DONE and again.final_status is TradeStatus.CANCELED, again
