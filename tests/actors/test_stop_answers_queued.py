"""A stop answers each waiting caller by what was done for its request: one with an order sent and unanswered
hears `outcome_unknown` (it may exist: reconciled at the next start); one queued behind another of its pair
(conflict_policy = queue), of which nothing was stored or sent, hears `shutting_down` ("nothing was sent") — or
`halted` when the supervisor gives up on the pair. Told `outcome_unknown`, its caller looked for an order that
never existed (scale review)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Iterator

import pykka
import pytest

from actors._pair_home import _Home
from actors.pair import release_callers
from engine.api import PlaceOutcome, Refusal, RefusalReason
from tests.pair._book_helpers import Harness, request
from tests.pair._restart_rig import _WAIT_S, _Rig


@pytest.fixture(autouse=True)
def _stop_all() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=_WAIT_S)


def _reason(future: concurrent.futures.Future[PlaceOutcome]) -> tuple[RefusalReason, str]:
    outcome = future.result(timeout=_WAIT_S)
    assert isinstance(outcome, Refusal), outcome
    return outcome.reason, outcome.message


def test_the_pair_actors_stop_tells_a_queued_request_nothing_was_sent() -> None:
    rig = _Rig()
    rig.book.settings = dataclasses.replace(rig.book.settings, conflict_policy="queue")
    sent = rig.place(request(price="59000"))  # rests: its create is sent, never answered
    queued = rig.place(request(price="58000"))  # behind it
    assert len(rig.proxy.active_requests().get(timeout=_WAIT_S)) == 2  # barrier: both taken
    assert len(rig.gateway.creates(1)) == 1
    rig.refs[-1].stop(timeout=_WAIT_S)  # Engine.stop(graceful=False)
    assert _reason(sent)[0] is RefusalReason.OUTCOME_UNKNOWN
    reason, message = _reason(queued)
    assert reason is RefusalReason.SHUTTING_DOWN and "nothing was sent" in message, message
    assert len(rig.gateway.creates(1)) == 1  # nothing of the queued one left


def test_giving_up_on_a_pair_tells_a_queued_request_nothing_was_sent() -> None:
    h = Harness(conflict_policy="queue")
    first, second = request(price="59000"), request(price="58000")
    h.place(first)
    h.place(second)
    home = _Home.of(h.book)
    waiters = {r.request_id: concurrent.futures.Future[PlaceOutcome]() for r in (first, second)}
    for request_id, future in waiters.items():
        home.wait(request_id, future)
    assert release_callers(h.book, "restart budget exhausted") == 2
    assert _reason(waiters[first.request_id])[0] is RefusalReason.OUTCOME_UNKNOWN
    reason, message = _reason(waiters[second.request_id])
    assert reason is RefusalReason.HALTED and "nothing was sent" in message, message
