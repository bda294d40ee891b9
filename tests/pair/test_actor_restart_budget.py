"""The pair actor over fakes when the database is down for a stored-order lookup, and when a restarted actor's
start fails (the root's restart budget): no lookup or caller is lost."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pykka
import pytest

from actors._pair_home import _Home
from actors.pair import release_callers
from engine.api import Accepted, PlaceOutcome, Refusal, RefusalReason
from engine.domain import OrderStatus, Pair, Side
from engine.gateway import GatewayResult
from engine.pair import PairBook
from tests.pair._book_helpers import order_json, request
from tests.pair._restart_rig import _WAIT_S, _HoldablePairActor, _Rig


@pytest.fixture(autouse=True)
def _stop_all() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def _late_report_lookup(letter: str) -> Any:
    """The stored-order lookup a late report (its order FILLED, no longer in memory) asks for."""
    from engine.domain import ClientOrderId
    from engine.exchange import ExchangeOrderStatus
    from engine.orders import ExchangeStatus
    from engine.pair import LookupStored
    from engine.pair._recover import Sighting

    event = ExchangeStatus(ExchangeOrderStatus.FILLED, Decimal("0.01"), Decimal("600"), None)
    cid = ClientOrderId("bx-" + letter * 26 + "-p")
    return LookupStored(cid, Sighting(cid, Side.BUY, "LIMIT", Decimal("0.01"), None, (event,), "stream"))


def _database_down_for(monkeypatch: pytest.MonkeyPatch, failures: int) -> tuple[list[int], list[Any]]:
    """Stored-order lookups fail `failures` times, then find nothing; returns the lookups made and the sightings
    handed to the book."""
    import actors.pair as pair_module

    calls: list[int] = []
    seen: list[Any] = []

    def stored_view(store: Any, cid: Any, timeout_s: float) -> tuple[Any, list[Any], Any]:
        calls.append(1)
        if len(calls) <= failures:
            raise RuntimeError("database unavailable (test)")
        return None, [], None

    monkeypatch.setattr(pair_module, "stored_view", stored_view)
    monkeypatch.setattr(PairBook, "on_stored", lambda self, sighting, *rest: seen.append(sighting) or [])
    return calls, seen


def test_a_stored_order_lookup_that_fails_while_the_database_is_down_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A late report for an order that left memory needs the stored order; the database is down for a while.
    # Dropping the report would lose its fill for good: nothing else looks at a finished order again.
    import actors.pair as pair_module

    calls, seen = _database_down_for(monkeypatch, 2)
    rig = _Rig()
    lookup = _late_report_lookup("a")
    rig.proxy.retry_lookup(lookup, 1).get(timeout=_WAIT_S)
    assert len(calls) == 1 and not seen
    for expected in (2, 3):
        rig.ticker.advance(pair_module._LOOKUP_RETRY_MS)
        rig.proxy.active_requests().get(timeout=_WAIT_S)  # the retry's tell is handled before this ask
        assert len(calls) == expected
    assert seen == [lookup.sighting]  # handed to the book once the database answered


class _BudgetRig(_Rig):
    """The root's restart budget too: past `budget` restarts the pair is given up on, its callers answered."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.crashes = 0
        self.gave_up = threading.Event()
        super().__init__()

    def _crashed(self, pair: Pair) -> None:
        self.crashes += 1
        if self.crashes > self.budget:
            release_callers(self.book, "restart budget exhausted")
            self.gave_up.set()
            return
        super()._crashed(pair)


def _restate_fails(monkeypatch: pytest.MonkeyPatch, times: int | None = None) -> list[int]:
    """`PairBook.restate` raises (every time, or the first `times` times); returns the list of its calls."""
    original = PairBook.restate
    calls: list[int] = []

    def restate(self: PairBook, now_ms: int) -> Any:
        calls.append(now_ms)
        if times is None or len(calls) <= times:
            raise ValueError("a record the book holds cannot be built (test)")
        return original(self, now_ms)

    monkeypatch.setattr(PairBook, "restate", restate)
    return calls


def test_a_restarted_actor_whose_start_fails_is_a_crash_counted_until_the_budget_gives_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The poison that killed the first actor is in the book: every restart's `restate` fails on it. pykka calls
    # no `on_failure` when `on_start` raises, so the supervisor never heard of it: no restart, no budget spent,
    # and the caller waited forever.
    rig = _BudgetRig(budget=2)
    waiting = rig.place(request())
    rig.gateway.creates(1)
    calls = _restate_fails(monkeypatch)
    rig.proxy.crash.defer()
    assert rig.gave_up.wait(_WAIT_S), "a failed start was never reported as a crash"
    assert rig.crashes == 3 and len(calls) == 2  # the crash, then both restarts' failed starts; no more
    # None runs the book (`refs` may still miss one: each restart is appended by the thread that started it).
    assert not pykka.ActorRegistry.get_by_class(_HoldablePairActor)
    outcome = waiting.result(_WAIT_S)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.OUTCOME_UNKNOWN


def test_what_was_parked_for_an_actor_that_failed_to_start_goes_to_the_next_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = _Rig(restart=False)
    future = rig.place(request())
    [create] = rig.gateway.creates(1)
    rig.proxy.crash.defer()
    assert rig.crashed.wait(_WAIT_S)
    assert create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "NEW")))  # parked: no actor runs the book
    calls = _restate_fails(monkeypatch, times=1)
    rig.crashed.clear()
    rig.restart = True
    rig.start()  # the parked answer is first in its inbox; its start fails
    assert rig.crashed.wait(_WAIT_S) and rig.restarted.wait(_WAIT_S)
    outcome = future.result(_WAIT_S)  # the third actor got the answer the second could not handle
    assert isinstance(outcome, Accepted) and outcome.order.status is OrderStatus.OPEN
    # One actor runs the book (in `refs` the third may come before the second: it starts from the second's
    # thread while the test's `start` has not returned yet).
    assert len(calls) == 2 and len(rig.refs) == 3 and sum(ref.is_alive() for ref in rig.refs) == 1


def test_a_stored_order_lookup_retried_after_a_restart_reaches_the_restarted_actor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The retry was told to the actor that scheduled it: dead after a restart, so the late fill it carried was
    # lost (ActorDeadError on the ticker's thread). It goes through the book's home, like every late message.
    import actors.pair as pair_module

    calls, seen = _database_down_for(monkeypatch, 1)
    rig = _Rig()
    lookup = _late_report_lookup("b")
    rig.proxy.retry_lookup(lookup, 1).get(timeout=_WAIT_S)
    assert len(calls) == 1
    rig.proxy.crash.defer()
    assert rig.restarted.wait(_WAIT_S)
    rig.proxy.active_requests().get(timeout=_WAIT_S)  # the restarted actor has started
    rig.ticker.advance(pair_module._LOOKUP_RETRY_MS)
    rig.proxy.active_requests().get(timeout=_WAIT_S)  # the retry's tell is handled before this ask
    assert len(calls) == 2 and seen == [lookup.sighting]


def test_a_callers_request_told_as_its_actor_dies_is_taken_by_the_restarted_actor() -> None:
    # `_Home.tell_running` (the Engine's way in): the actor already refuses tells, but its `on_failure` (`detach`)
    # has not run yet. Told straight to the actor the request was refused "restarting"; told while the actor still
    # looked alive and queued after `detach` took the inbox, pykka dropped it and its caller was never answered.
    rig = _Rig(restart=False)
    home = _Home.of(rig.book)
    dying = rig.refs[-1]
    entered, gate = threading.Event(), threading.Event()
    rig.proxy.hold.defer(entered, gate)
    assert entered.wait(_WAIT_S)
    pykka.ActorRegistry.unregister(dying)  # what pykka does first when the actor fails (`_handle_failure`)
    dying.actor_stopped.set()
    future: concurrent.futures.Future[PlaceOutcome] = concurrent.futures.Future()
    assert home.tell_running("place", request(), future)  # parked for whichever actor runs the book next
    home.detach(dying, dying.actor_inbox)  # the dying actor's `on_failure`
    gate.set()
    rig.start()
    [create] = rig.gateway.creates(1)
    assert create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "NEW")))
    assert isinstance(future.result(_WAIT_S), Accepted)


def test_a_callers_request_is_told_under_the_lock_detach_takes_the_inbox_with() -> None:
    # So a request is in the inbox `detach` salvages, or parked: never put into an inbox already taken.
    rig = _Rig()
    home = _Home.of(rig.book)
    seen: list[bool] = []

    class _Ref:
        def tell(self, message: Any) -> None:
            seen.append(home._lock.locked())

    home._actor = _Ref()  # type: ignore[assignment]
    assert home.tell_running("place", request(), concurrent.futures.Future())
    assert seen == [True]


def test_a_callers_request_is_refused_when_no_actor_runs_the_book() -> None:
    rig = _Rig(restart=False)
    rig.proxy.crash.defer()
    assert rig.crashed.wait(_WAIT_S)
    future: concurrent.futures.Future[PlaceOutcome] = concurrent.futures.Future()
    assert not _Home.of(rig.book).tell_running("place", request(), future)  # the engine answers it: restarting, retry
    assert not future.done()
