"""A caller's cancel parked for a pair actor that never comes back is answered, once, on every path that lets go of
what was parked: the orphan grace (nobody restarted the pair nor gave up on it), the supervisor giving up on a pair
whose tracking-only book fails before or after it took the parked messages, and the engine stopping its actors with
a crashed pair's crash report left behind the root's stop. `unavailable` (retry, cause `engine`) while the engine
runs, `shutting_down` once it stops; a parked `place` and a waiting caller are answered alongside.

The cancel is parked as `Engine.cancel_order` parks it (`_Home.tell_running` while the actor is dying, then the
actor's `detach`); the root's mixins run as plain objects over fakes, the pair actor is the real one where it matters.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import deque
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pykka
import pytest

from actors._pair_home import _Home, _release_orphaned, answer_at_stop, engine_stopping, redirect_tells
from actors._state import EngineState
from actors._supervision import SupervisionMixin
from actors._ticker import Ticker
from actors.pair import ORPHAN_GRACE_MS, PairActor, release_callers
from engine.api import CancelOutcome, CancelStatus, PlaceOutcome, Refusal, RefusalReason
from engine.clock import ManualClock
from engine.domain import Pair, RequestId
from engine.pair import ShutdownTally
from tests.actors.test_tracking_only import _Root as _TrackingRoot
from tests.pair._book_helpers import Harness, order_json, request
from tests.pair._restart_rig import _WAIT_S, _Rig

BTC = Pair("BTC/USDT")
_RETRY = {"retry": "1", "cause": "engine"}


@pytest.fixture(autouse=True)
def _stop_all() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=_WAIT_S)  # bounded: an actor whose thread never started never stops


class _Dead(pykka.ThreadingActor):
    """Stands in for a pair actor that died."""


class _Caller:
    """What `Engine.cancel_order` and `place_order` hand the pair actor: a cancel's reply, a placement's future."""

    def __init__(self) -> None:
        self.cancels: list[CancelOutcome | None] = []
        self.placed: concurrent.futures.Future[PlaceOutcome] = concurrent.futures.Future()
        self.waiting: concurrent.futures.Future[PlaceOutcome] = concurrent.futures.Future()

    def cancel_outcome(self) -> CancelOutcome:
        [outcome] = self.cancels  # answered exactly once
        assert outcome is not None
        return outcome

    def refusal(self, future: concurrent.futures.Future[PlaceOutcome]) -> RefusalReason:
        outcome = future.result(timeout=0)
        assert isinstance(outcome, Refusal), outcome
        return outcome.reason


def _parked(book: Any, caller: _Caller, *, detached: bool = True) -> tuple[_Home, pykka.ActorRef[Any]]:
    """`book`'s actor died with a caller's cancel and place told to it as it died (and a request it held)."""
    home = _Home.of(book)
    ref = _Dead.start()
    home.attach(ref)
    home.wait(RequestId("held"), caller.waiting)  # a request the book holds: its caller waits for its ack
    ref.stop()  # dead: a tell from now on is parked for the next actor
    assert home.tell_running("cancel", RequestId("r1"), caller.cancels.append)  # the engine thinks it was told
    assert home.tell_running("place", request(), caller.placed)
    if detached:
        home.detach(ref, ref.actor_inbox)  # its `on_failure`
    return home, ref


def _book() -> Any:
    return SimpleNamespace(pair=BTC, actor_state=None)


# ---- the orphan grace ---------------------------------------------------------------------------------------
def test_a_cancel_parked_for_a_crashed_actor_nobody_restarts_is_answered_after_the_grace() -> None:
    rig = _Rig(restart=False)
    entered, gate = threading.Event(), threading.Event()
    rig.proxy.hold.defer(entered, gate)
    assert entered.wait(_WAIT_S)
    rig.proxy.crash.defer()
    caller = _Caller()
    home = _Home.of(rig.book)
    assert home.tell_running("cancel", RequestId("r1"), caller.cancels.append)  # queued behind the crash
    assert home.tell_running("place", request(), caller.placed)
    gate.set()
    assert rig.crashed.wait(_WAIT_S)  # the root's crash report is never handled (dropped behind its stop)
    rig.ticker.advance(ORPHAN_GRACE_MS - 1)
    assert caller.cancels == []  # the restart may still come
    rig.ticker.advance(1)
    outcome = caller.cancel_outcome()
    assert outcome.status is CancelStatus.UNAVAILABLE and outcome.details == _RETRY, outcome
    assert outcome.request_id == "r1" and outcome.pair == BTC and not outcome.canceling
    assert outcome.message.startswith("the pair actor crashed and was not restarted; the cancel was not sent")
    assert caller.refusal(caller.placed) is RefusalReason.HALTED
    # Exactly once: a give-up or a restarted actor that comes later finds nothing parked.
    assert release_callers(rig.book, "restart budget exhausted") == 0
    rig.start()
    assert rig.proxy.active_requests().get(timeout=_WAIT_S) == []  # barrier: the new actor took what was parked
    assert len(caller.cancels) == 1


def test_the_reviewers_repro_a_parked_cancel_then_detach_then_the_orphan_release() -> None:
    caller, book = _Caller(), _book()
    home, _ref = _parked(book, caller)
    _release_orphaned(home, home.generation, BTC)
    assert caller.cancel_outcome().status is CancelStatus.UNAVAILABLE
    assert caller.refusal(caller.waiting) is RefusalReason.OUTCOME_UNKNOWN


def test_an_orphan_released_while_the_engine_stops_is_shutting_down() -> None:
    caller, book = _Caller(), _book()
    home, _ref = _parked(book, caller)
    engine_stopping(book)  # the supervisor's `shutdown` began
    _release_orphaned(home, home.generation, BTC)
    outcome = caller.cancel_outcome()
    assert outcome.status is CancelStatus.SHUTTING_DOWN and "the cancel was not sent" in outcome.message


# ---- the supervisor gives up on a pair ----------------------------------------------------------------------
class _Supervisor(SupervisionMixin):
    """The supervision mixin as a plain object: one pair, its actor dead; nothing else runs."""

    def __init__(self, book: Any, *, track_only_fails: bool = False) -> None:
        self._book = book
        self.redirected: list[Any] = []
        self._books = {BTC: book}
        self._pairs: dict[Pair, Any] = {}
        self._outside = {}
        self._state = EngineState()
        self._clock = ManualClock(0)
        self._ticker = Ticker(self._clock)
        self._timers, self._timers_stopped, self._timer_lock = {}, False, threading.Lock()
        self._stream_ref = self._gateway_ref = self._store = self._bus = self.gateway = None
        self._stopping = False
        self.alerts: list[str] = []
        self._alerts = lambda key, _message: self.alerts.append(key)
        self._tracked_tally = ShutdownTally
        self._track_only_fails = track_only_fails

    def _track_only(self, pair: Pair) -> None:
        if self._track_only_fails:  # before it took the parked messages (`redirect_tells`)
            raise RuntimeError("the tracking-only book failed")
        self.redirected += redirect_tells(self._book, self.redirected.append)  # the root carries them out


@pytest.mark.parametrize("stopping", [False, True])
def test_a_give_up_whose_tracking_only_book_fails_first_answers_the_parked_cancel(stopping: bool) -> None:
    caller, book = _Caller(), _book()
    _parked(book, caller)
    supervisor = _Supervisor(book, track_only_fails=True)
    if stopping:
        supervisor.shutdown(False)
    supervisor._give_up(BTC, "restart budget exhausted")
    assert supervisor.alerts == ["orders_untracked"]
    outcome = caller.cancel_outcome()
    if stopping:
        assert outcome.status is CancelStatus.SHUTTING_DOWN, outcome
    else:
        assert outcome.status is CancelStatus.UNAVAILABLE and outcome.details == _RETRY, outcome
    assert outcome.message.startswith("the pair actor stopped for good (restart budget exhausted)")
    assert caller.refusal(caller.placed) is RefusalReason.HALTED
    assert caller.refusal(caller.waiting) is RefusalReason.OUTCOME_UNKNOWN
    assert _Home.of(book).release(caller.placed.result(0), caller.placed.result(0), cancel=outcome) == 0  # once


def test_a_tracking_only_book_that_fails_after_taking_the_parked_cancel_still_carries_it_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The book's `resume` raises once `_track_only` took what was parked: the cancel was in no one's hands.
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))  # the limit rests
    caller = _Caller()
    home = _Home.of(h.book)
    ref = _Dead.start()
    home.attach(ref)
    ref.stop()
    assert home.tell_running("cancel", req.request_id, caller.cancels.append)
    home.detach(ref, ref.actor_inbox)

    def resume(_now_ms: int) -> Any:
        raise RuntimeError("the book cannot resume")

    monkeypatch.setattr(h.book, "resume", resume)
    root = _TrackingRoot()
    root._books = {BTC: h.book}
    root._outside, root._held, root._held_overflow = {}, {}, set()
    with pytest.raises(RuntimeError, match="cannot resume"):
        root._track_only(BTC)  # `_give_up` alerts `orders_untracked` on this
    outcome = caller.cancel_outcome()
    assert outcome.status is CancelStatus.CANCEL_SENT and outcome.client_order_ids == (h.sent[0].key,), outcome


def test_a_restarted_actor_whose_thread_never_starts_gives_back_what_was_parked_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `attach` handed it the parked cancel and place; then its thread could not start: nobody reads its inbox.
    h = Harness()
    caller = _Caller()
    _parked(h.book, caller)

    def no_thread(_actor: Any) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(PairActor, "_start_actor_loop", no_thread)
    supervisor = _Supervisor(h.book)
    supervisor._s = cast("Any", SimpleNamespace(restart_limits=lambda: (3, 60_000)))
    supervisor._clock, supervisor._recent_restarts, supervisor._restarts = ManualClock(0), deque(), 0
    supervisor._self = SimpleNamespace(child_failed=SimpleNamespace(defer=lambda _pair: None))
    supervisor._store, supervisor._bus, supervisor._publish = object(), object(), lambda _event: None
    supervisor.gateway = SimpleNamespace(holds_create=lambda _key: False)
    supervisor.child_failed(BTC)  # the restart raises: halted, and the pair given up on
    assert supervisor.alerts == ["restart_budget"] and supervisor._state.intake().halted
    [cancel] = supervisor.redirected  # the root's tracking-only book carries the cancel out
    assert cancel.attr_path == ("cancel",) and cancel.args[0] == "r1"
    assert caller.refusal(caller.placed) is RefusalReason.HALTED
    assert caller.refusal(caller.waiting) is RefusalReason.OUTCOME_UNKNOWN
    assert not _Home.of(h.book).tell_running("cancel", RequestId("r2"), caller.cancels.append)  # the root's now


# ---- the engine stops its actors ----------------------------------------------------------------------------
def test_the_stop_answers_the_callers_of_a_crashed_pair_whose_crash_report_was_never_handled() -> None:
    caller, book = _Caller(), _book()
    _home, ref = _parked(book, caller)
    supervisor = _Supervisor(book)
    supervisor._pairs = {BTC: ref}  # routing still points at the dead actor
    supervisor._stop_children()  # the root's `on_stop`: the ticker (and the orphan grace) stops next
    outcome = caller.cancel_outcome()
    assert outcome.status is CancelStatus.SHUTTING_DOWN and outcome.request_id == "r1", outcome
    assert caller.refusal(caller.placed) is RefusalReason.SHUTTING_DOWN
    assert caller.refusal(caller.waiting) is RefusalReason.OUTCOME_UNKNOWN
    assert supervisor._state.children_stopped.is_set()


def test_a_crashed_actor_that_detaches_after_the_stop_answered_is_answered_as_it_detaches() -> None:
    # It died, but its `on_failure` had not run when the root stopped the pairs: what it parks then is answered.
    caller, book = _Caller(), _book()
    home, ref = _parked(book, caller, detached=False)
    assert answer_at_stop(book) == 0  # an actor still runs the book, as far as the home knows
    assert caller.cancels == [] and not caller.placed.done()
    home.detach(ref, ref.actor_inbox)
    assert caller.cancel_outcome().status is CancelStatus.SHUTTING_DOWN
    assert caller.refusal(caller.placed) is RefusalReason.SHUTTING_DOWN
    assert caller.refusal(caller.waiting) is RefusalReason.OUTCOME_UNKNOWN


def test_a_pair_actor_that_stops_answers_its_own_callers_and_the_stop_answers_none_twice() -> None:
    rig = _Rig(restart=False)
    caller = _Caller()
    entered, gate = threading.Event(), threading.Event()
    rig.proxy.hold.defer(entered, gate)
    assert entered.wait(_WAIT_S)
    stopped = rig.refs[-1].stop(block=False)
    assert _Home.of(rig.book).tell_running("cancel", RequestId("r1"), caller.cancels.append)  # behind the stop
    gate.set()
    stopped.get(timeout=_WAIT_S)
    assert caller.cancel_outcome().status is CancelStatus.SHUTTING_DOWN  # from its `on_stop`
    assert answer_at_stop(rig.book) == 0 and len(caller.cancels) == 1
