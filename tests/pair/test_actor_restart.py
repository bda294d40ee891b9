"""The pair actor over fakes at its seams (gateway, persistence, manual-clock ticker): no caller ever waits
forever when it crashes. The test plays the root: it starts a new actor over the same book when told of a crash.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import pykka
import pytest
from pykka._envelope import Envelope
from pykka.messages import ProxyCall

from actors._pair_home import _Home
from actors._ticker import Ticker
from actors.pair import ORPHAN_GRACE_MS, PairActor, release_callers
from engine.api import Accepted, EngineEvent, PlaceOutcome, Refusal, RefusalReason
from engine.clock import ManualClock
from engine.domain import OrderRequest, OrderStatus, Pair, Side
from engine.execution import Decision, ExecutionConfig, RiskSnapshot
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.pair import IntakeContext, PairBook, PairSettings
from tests.pair._book_helpers import PAIR, RULES, T0, order_json, request

_WAIT_S = 10.0


class _Gateway:
    def __init__(self) -> None:
        self.sent: list[GatewayRequest] = []
        self.arrived = threading.Condition()

    def submit(self, request: GatewayRequest) -> None:
        with self.arrived:
            self.sent.append(request)
            self.arrived.notify_all()

    def holds_create(self, key: str) -> bool:
        return False  # every create here is answered by the test, or never: none is waiting in a queue

    def creates(self, count: int) -> list[GatewayRequest]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: self._creates_now() >= count, _WAIT_S)
            return [r for r in self.sent if r.op is Op.CREATE_ORDER]

    def _creates_now(self) -> int:
        return sum(r.op is Op.CREATE_ORDER for r in self.sent)


class _Store:
    proxy: Any = None

    def save_many(self, records: Sequence[Any]) -> None:
        pass

    def write_ahead_then(self, record: Any, on_durable: Any, on_failed: Any, companions: Sequence[Any] = ()) -> None:
        on_durable()


class _HoldablePairActor(PairActor):
    def hold(self, entered: threading.Event, gate: threading.Event) -> None:
        """Keep the actor busy so that messages queue behind this one."""
        entered.set()
        gate.wait(_WAIT_S)


class _Rig:
    """The seams of one pair, and the root's part: a restart over the same book on every crash (if allowed)."""

    def __init__(self, *, restart: bool = True, risk: Any = None) -> None:
        execution = ExecutionConfig(limit_timeout_ms=3_600_000)
        self.book = PairBook(PAIR, RULES, PairSettings(execution=execution), risk=risk)
        self.book.on_price(Decimal("59990"), Decimal("60010"), T0)
        self.ticker = Ticker(ManualClock(T0))
        self.gateway = _Gateway()
        self.events: list[EngineEvent] = []
        self.restart = restart
        self.crashed = threading.Event()
        self.refs: list[pykka.ActorRef[Any]] = []
        self.restarted = threading.Event()
        self.start()

    def start(self) -> pykka.ActorRef[Any]:
        ref = _HoldablePairActor.start(
            self.book,
            gateway=self.gateway,
            store=_Store(),
            ticker=self.ticker,
            clock=self.ticker.clock,
            events=self.events.append,
            alerts=lambda _key, _message: None,
            intake=IntakeContext,
            on_crash=self._crashed,
        )
        self.refs.append(ref)
        return ref

    def _crashed(self, _pair: Pair) -> None:
        # On the dying actor's thread, after its `on_failure` took over what it held (as the root's tell does).
        self.crashed.set()
        if self.restart:
            self.start()
            self.restarted.set()

    @property
    def proxy(self) -> Any:
        return self.refs[-1].proxy()

    def place(self, req: OrderRequest) -> concurrent.futures.Future[PlaceOutcome]:
        future: concurrent.futures.Future[PlaceOutcome] = concurrent.futures.Future()
        self.proxy.place.defer(req, future)
        return future


@pytest.fixture(autouse=True)
def _stop_all() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def test_a_caller_waiting_at_the_crash_hears_the_real_outcome_from_the_restarted_actor() -> None:
    rig = _Rig()
    req = request()
    future = rig.place(req)
    [create] = rig.gateway.creates(1)
    rig.proxy.crash.defer()
    assert rig.restarted.wait(_WAIT_S)
    rig.ticker.advance(ORPHAN_GRACE_MS)  # a restarted pair's callers are not given up on
    assert not future.done()
    # The create's answer comes to the reply address the dead actor gave: it reaches its successor.
    assert create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "NEW")))
    outcome = future.result(_WAIT_S)
    assert isinstance(outcome, Accepted) and outcome.order.status is OrderStatus.OPEN
    [order] = rig.proxy.open_orders().get(timeout=_WAIT_S)
    assert order.status is OrderStatus.OPEN  # the new actor knows the order is live (not stuck `submitted`)


def test_a_timer_whose_tell_is_lost_in_the_crash_race_is_rearmed_by_the_restarted_actor() -> None:
    rig = _Rig()
    req = request()
    future = rig.place(req)
    [create] = rig.gateway.creates(1)
    assert create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "NEW")))
    assert isinstance(future.result(_WAIT_S), Accepted)
    dead = rig.refs[-1]
    rig.proxy.crash.defer()
    assert rig.restarted.wait(_WAIT_S)
    # The limit's deadline came as the actor died: the ticker's tell passed `is_alive()` and landed in the inbox
    # after `on_failure` took it, so pykka drops it. The book still holds the deadline: the restarted actor
    # re-armed it (`PairBook.resume`).
    dead.actor_inbox.put(Envelope(ProxyCall(attr_path=("on_timer",), args=(f"plan:{req.request_id}",), kwargs={})))
    rig.proxy.active_requests().get(timeout=_WAIT_S)  # barrier: the new actor's `on_start` has run
    rig.ticker.advance(3_600_000)  # the limit timeout
    with rig.gateway.arrived:
        assert rig.gateway.arrived.wait_for(lambda: any(r.op is Op.CANCEL_ORDER for r in rig.gateway.sent), _WAIT_S), (
            "the limit's timeout was lost with the dead actor"
        )


def test_an_answer_arriving_while_no_actor_runs_the_book_is_kept_for_the_next_one() -> None:
    rig = _Rig(restart=False)
    future = rig.place(request())
    [create] = rig.gateway.creates(1)
    rig.proxy.crash.defer()
    assert rig.crashed.wait(_WAIT_S)
    assert create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "NEW")))  # nobody to tell: parked
    rig.start()
    assert isinstance(future.result(_WAIT_S), Accepted)


def test_requests_queued_behind_the_crash_are_executed_by_the_restarted_actor() -> None:
    rig = _Rig()
    entered, gate = threading.Event(), threading.Event()
    rig.proxy.hold.defer(entered, gate)
    assert entered.wait(_WAIT_S)
    rig.proxy.crash.defer()
    behind = request(side=Side.SELL, price="60100")
    future = rig.place(behind)  # queued behind the crash: pykka would drop it with the dead inbox
    gate.set()
    assert rig.restarted.wait(_WAIT_S)
    [create] = rig.gateway.creates(1)
    assert create.params["side"] == "SELL" and create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "NEW")))
    assert isinstance(future.result(_WAIT_S), Accepted)


def test_callers_of_a_pair_that_is_not_restarted_are_answered_after_the_grace() -> None:
    rig = _Rig(restart=False)
    waiting = rig.place(request())
    rig.gateway.creates(1)
    entered, gate = threading.Event(), threading.Event()
    rig.proxy.hold.defer(entered, gate)
    assert entered.wait(_WAIT_S)
    rig.proxy.crash.defer()
    never_taken = rig.place(request(side=Side.SELL))
    gate.set()
    assert rig.crashed.wait(_WAIT_S)
    rig.ticker.advance(ORPHAN_GRACE_MS - 1)
    assert not waiting.done() and not never_taken.done()
    rig.ticker.advance(1)
    first = waiting.result(_WAIT_S)
    assert isinstance(first, Refusal) and first.reason is RefusalReason.OUTCOME_UNKNOWN  # it may be live
    second = never_taken.result(_WAIT_S)
    assert isinstance(second, Refusal) and second.reason is RefusalReason.HALTED  # nothing was sent


def test_the_supervisor_can_answer_the_callers_of_a_pair_it_gives_up_on_at_once() -> None:
    rig = _Rig(restart=False)
    waiting = rig.place(request())
    rig.gateway.creates(1)
    rig.proxy.crash.defer()
    assert rig.crashed.wait(_WAIT_S)
    assert release_callers(rig.book, "restart budget exhausted") == 1
    outcome = waiting.result(0)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.OUTCOME_UNKNOWN
    assert "restart budget exhausted" in outcome.message


def test_requests_queued_behind_a_stop_are_answered() -> None:
    rig = _Rig()
    entered, gate = threading.Event(), threading.Event()
    rig.proxy.hold.defer(entered, gate)
    assert entered.wait(_WAIT_S)
    stopped = rig.refs[-1].stop(block=False)
    future = rig.place(request())
    gate.set()
    stopped.get(timeout=_WAIT_S)
    outcome = future.result(_WAIT_S)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.SHUTTING_DOWN


class _Broken:
    def check_trade_allowed(self, req: OrderRequest, snapshot: RiskSnapshot) -> Decision:
        if req.side is Side.SELL:
            raise RuntimeError("a bug in a custom risk manager")
        return Decision.allow()


def test_any_failure_at_intake_refuses_the_request_and_the_actor_lives_on() -> None:
    rig = _Rig(risk=_Broken())
    outcome = rig.place(request(side=Side.SELL)).result(_WAIT_S)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.INVALID_REQUEST
    assert not rig.crashed.is_set() and len(rig.refs) == 1
    assert rig.proxy.active_requests().get(timeout=_WAIT_S) == []
    rig.place(request())
    rig.gateway.creates(1)


def test_a_caller_whose_create_is_unanswered_at_the_stop_hears_outcome_unknown_not_shutting_down() -> None:
    # Its create left (or is queued): the order may exist. "Shutting down" means nothing was executed, and a
    # caller told that might place the request again under a new key: a duplicate.
    rig = _Rig()
    future = rig.place(request())
    rig.gateway.creates(1)
    rig.refs[-1].stop(timeout=_WAIT_S)
    outcome = future.result(_WAIT_S)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.OUTCOME_UNKNOWN, outcome
    assert "may exist" in outcome.message


def test_records_of_the_message_that_crashed_are_stored_by_the_restarted_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    # The create's answer carries a fill; the book applies it, then a bug raises before its records are carried
    # out. The book knows the fill (a refetch would add nothing): the restarted actor stores it again.
    from engine.domain import Fill, Order
    from engine.pair._plans import PlanBook

    saved: list[Any] = []
    monkeypatch.setattr(_Store, "save_many", lambda self, records: saved.extend(records))
    original = PlanBook._leg_filled
    raised: list[bool] = []

    def buggy(self: PlanBook, leg: Any, fill: Any, now_ms: int) -> None:
        if not raised:
            raised.append(True)
            raise RuntimeError("a bug after the fill was applied (test)")
        original(self, leg, fill, now_ms)

    monkeypatch.setattr(PlanBook, "_leg_filled", buggy)
    rig = _Rig()
    rig.place(request())
    [create] = rig.gateway.creates(1)
    assert create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "FILLED", "0.01", [("60000", "0.01")])))
    assert rig.restarted.wait(_WAIT_S)
    rig.proxy.active_requests().get(timeout=_WAIT_S)  # the new actor has run its start-up
    fills = [r for r in saved if isinstance(r, Fill)]
    assert [f.client_order_id for f in fills] == [create.key]
    orders = [r for r in saved if isinstance(r, Order) and r.client_order_id == create.key]
    assert orders and orders[-1].status is OrderStatus.FILLED and orders[-1].filled == Decimal("0.01")


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
