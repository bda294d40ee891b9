"""What outlives one pair actor, and the answers to its callers when no actor runs its book.

`_Home` is kept on the `PairBook` (see `actors.pair` for the crash story): callers' futures, the reply address
of gateway results, and the messages a dead actor left in its inbox. `release_callers` (for the supervisor),
`_release_orphaned` (on the ticker, after `actors.pair.ORPHAN_GRACE_MS`) and `answer_at_stop` (once the engine
stopped its actors) answer callers nobody else will — waiters, parked `place` and parked `cancel` messages alike,
each once: a caller's future is never left unanswered. `redirect_tells` (for the supervisor, past the restart
budget) sends what would have waited for an actor that never comes to the root's tracking-only book instead;
`start_failures` tells it of a book no actor can start; `stored_view` asks persistence for an order that left
the book's memory, `replayed_outcome` for the answer to a replayed idempotency key. `GatewayLike` and `StoreLike`
are what the pair actor needs of the gateway and persistence (`StoreLike` and what asks persistence are in
`actors._pair_store`, re-exported here). A caller's cancel carries a `CancelReply` (`Engine.cancel_order`'s future):
`answer_cancel` answers it, whichever actor (the pair's, or the root for a halted pair) carried the cancel out, and
`send_cancel_ahead` sends it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import pykka
from loguru import logger
from pykka.messages import ProxyCall

from actors._pair_store import StoreLike, replayed_outcome, send_cancel_ahead, stored_view
from engine.api import CancelOutcome, CancelStatus, PlaceOutcome, Refusal, RefusalReason
from engine.domain import Pair, RequestId
from engine.gateway import GatewayRequest, GatewayResult
from engine.pair import PairBook, Stage

__all__ = [
    "CancelReply",
    "GatewayLike",
    "StoreLike",
    "Waiter",
    "_Home",
    "_release_orphaned",
    "answer_at_stop",
    "answer_cancel",
    "cancel_failed",
    "engine_stopping",
    "redirect_tells",
    "release_callers",
    "replayed_outcome",
    "reply_address",
    "send_cancel_ahead",
    "start_failures",
    "stored_view",
]

Waiter = concurrent.futures.Future[PlaceOutcome]
CancelReply = Callable[[CancelOutcome | None], None]
"""Hears what a caller's cancel did, from the actor that carried it out; None: the request is not in the book
(the caller's side asks the database). Never blocks."""


class GatewayLike(Protocol):
    """What the pair actor needs of the gateway (`actors.gateway.GatewayHandle`)."""

    def submit(self, request: GatewayRequest) -> None:
        """Queue a request; its result goes to `request.reply_to`."""

    def holds_create(self, key: str) -> bool:
        """True while a create for `key` is in the gateway, not answered yet."""

    def withdraw_create(self, key: str) -> None:
        """The create for `key`, if not sent yet, never leaves (answered `CANCELED_BEFORE_SENT`)."""


class _Home:
    """What outlives one pair actor (see the `actors.pair` module docstring); thread-safe, kept on its book.

    Every tell that goes through `tell` happens under the lock, and `detach` takes the dead actor's inbox under
    it too: a message is either in that inbox when it is salvaged, or parked for the next actor — never lost.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._actor: pykka.ActorRef[Any] | None = None
        self._parked: list[ProxyCall] = []
        self._waiters: dict[RequestId, list[Waiter]] = {}
        self._generation = 0
        self._sink: Callable[[ProxyCall], None] | None = None
        self._closed: tuple[PlaceOutcome, PlaceOutcome, CancelOutcome] | None = None
        self._book: PairBook | None = None
        self.stopping = False
        """The engine is stopping (`engine_stopping`): a caller's cancel nobody carries out hears `shutting_down`."""
        self.failed_starts = 0
        """Actors in a row whose start failed on this book (0 once one starts): see `start_failures`."""

    @staticmethod
    def of(book: PairBook) -> _Home:
        """The home kept on `book` (made on first use)."""
        if not isinstance(book.actor_state, _Home):
            book.actor_state = _Home()
        home: _Home = book.actor_state
        home._book = book if isinstance(book, PairBook) else None  # (tests run it on stand-ins)
        return home

    @property
    def generation(self) -> int:
        """How many actors have run the book (1 for the first; more after a crash and restart)."""
        return self._generation

    # ---- the actor running the book ------------------------------------------------------------------
    def attach(self, ref: pykka.ActorRef[Any]) -> int:
        """`ref` runs the book from now on; what was parked goes first into its inbox. Returns how many."""
        with self._lock:
            parked, self._parked = self._parked, []
            for message in parked:
                ref.tell(message)  # not started yet, so alive: queued ahead of anything else
            self._actor = ref
            self._sink = None
            self._generation += 1
            return len(parked)

    def detach(self, ref: pykka.ActorRef[Any], inbox: Any) -> tuple[int, int]:
        """`ref` died: park the tells left in its inbox (ahead of any parked since). Asks stay in the inbox
        (pykka answers them with `ActorDeadError`). Once the engine stopped its actors (`close`), what is parked
        is answered at once: nobody will run the book. Returns (messages parked, the generation it had)."""
        with self._lock:
            if self._actor is ref:
                self._actor = None
            tells: list[ProxyCall] = []
            asks: list[Any] = []
            while not inbox.empty():
                envelope = inbox.get()
                if envelope.reply_to is None and isinstance(envelope.message, ProxyCall):
                    tells.append(envelope.message)
                else:
                    asks.append(envelope)
            for envelope in asks:
                inbox.put(envelope)
            self._parked[:0] = tells
            generation, closed = self._generation, self._closed
        if closed is not None:
            self.release(*closed[:2], cancel=closed[2])
        return len(tells), generation

    def abandon(self) -> int:
        """The actor attached last never ran: its start raised after `attach` (its thread never started). It is
        marked dead (unregistered, stopped: a tell to it raises) and what it was handed is parked again, as for
        one that died (`detach`); else it would sit in an inbox nobody reads. Returns how many were parked."""
        with self._lock:
            actor = self._actor
        if actor is None:
            return 0
        pykka.ActorRegistry.unregister(actor)
        actor.actor_stopped.set()
        return self.detach(actor, actor.actor_inbox)[0]

    def tell(self, message: ProxyCall) -> None:
        """Tell the actor running the book now, or park the message until one does."""
        with self._lock:
            if self._actor is not None:
                try:
                    self._actor.tell(message)
                except pykka.ActorDeadError:
                    pass  # it is dying; its `detach` (which waits for this lock) will find this parked
                else:
                    return
            if self._sink is not None:
                self._sink(message)  # a tell (cheap), under the lock: in order with what `redirect` returned
                return
            self._parked.append(message)

    def tell_running(self, method: str, *args: Any) -> bool:
        """A caller's message (`place`, `cancel`) for the actor running the book; False when none does (crashed
        and not restarted yet, or given up on).

        Under the lock, like `tell`: a message racing its actor's crash is in the inbox `detach` salvages, or
        parked here when the actor already refuses tells (`detach`, waiting for the lock, has not run yet). Either
        way the restarted actor takes it, or `release` (`drop_cancels`) answers it. Told straight to the actor, a
        message sent while the actor still looked alive and queued after `detach` took the inbox was dropped by
        pykka: a request's caller was never answered, a cancel never carried out.
        """
        message = ProxyCall(attr_path=(method,), args=args, kwargs={})
        with self._lock:
            if self._actor is None:
                return False
            try:
                self._actor.tell(message)
            except pykka.ActorDeadError:
                self._parked.append(message)
            return True

    def drop_cancels(self, pair: Pair, why: str) -> int:
        """Nobody will carry out the callers' cancels parked here (the engine is stopping): answer them
        `shutting_down` and forget them. Returns how many."""
        with self._lock:
            cancels = self._take("cancel")
        _answer_cancels(cancels, CancelOutcome(CancelStatus.SHUTTING_DOWN, pair, RequestId(""), why))
        return len(cancels)

    def redirect(self, sink: Callable[[ProxyCall], None]) -> list[ProxyCall]:
        """No actor will run the book again: returns the tells parked for one (`place` messages stay parked
        for `release`), and every tell from now on goes to `sink` instead of waiting."""
        with self._lock:
            self._sink = sink
            kept = [m for m in self._parked if m.attr_path != ("place",)]
            self._parked = [m for m in self._parked if m.attr_path == ("place",)]
            return kept

    def reply(self, result: GatewayResult) -> None:
        """The reply address of every gateway request of the book (stable across restarts)."""
        self.tell(ProxyCall(attr_path=("on_result",), args=(result,), kwargs={}))

    # ---- callers -------------------------------------------------------------------------------------
    def wait(self, request_id: RequestId, future: Waiter) -> None:
        """`future` is answered when the book resolves `request_id`."""
        with self._lock:
            self._waiters.setdefault(request_id, []).append(future)

    def resolve(self, request_id: RequestId, outcome: PlaceOutcome) -> None:
        """Answer every caller waiting on `request_id`."""
        with self._lock:
            futures = self._waiters.pop(request_id, [])
        _answer(futures, outcome)

    def release(
        self, outcome: PlaceOutcome, placed: PlaceOutcome, *, generation: int | None = None,
        cancel: CancelOutcome | None = None,
    ) -> int:  # fmt: skip
        """Answer every caller: waiters of requests the book holds with `outcome` (they may have an order at
        the exchange) — but those of requests that never started (queued behind another of the pair: nothing of
        them was stored or sent, `not_started`) with `placed` —, parked `place` messages (never seen by the book)
        with `placed`, and parked `cancel` messages (never carried out) with `cancel`, its `request_id` each
        cancel's (without `cancel` they stay parked: `drop_cancels`). With `generation`, only if no actor ran the
        book since. Each is taken from here under the lock: answered once, by whichever path takes it first.
        Returns how many callers were answered."""
        idle = not_started(self._book) if self._book is not None else frozenset()
        with self._lock:
            if generation is not None and (generation != self._generation or self._actor is not None):
                return 0
            waiting = [f for r, futures in self._waiters.items() if r not in idle for f in futures]
            unsent = [f for r, futures in self._waiters.items() if r in idle for f in futures]
            self._waiters.clear()
            places = self._take("place")
            cancels = [] if cancel is None else self._take("cancel")
        _answer(waiting, outcome)
        _answer(unsent, placed)
        _answer([m.args[1] for m in places if len(m.args) > 1], placed)
        if cancel is not None:
            _answer_cancels(cancels, cancel)
        return len(waiting) + len(unsent) + len(places) + len(cancels)

    def close(self, outcome: PlaceOutcome, placed: PlaceOutcome, cancel: CancelOutcome) -> int:
        """The engine stopped its actors: answer every caller (as `release`) now if no actor runs the book, else
        once its actor leaves (`detach`: a crashed actor whose `on_failure` has not run yet, a stuck one that
        stops later). Returns how many were answered now."""
        with self._lock:
            self.stopping = True
            self._closed = (outcome, placed, cancel)
            if self._actor is not None:
                return 0
        return self.release(outcome, placed, cancel=cancel)

    def _take(self, method: str) -> list[ProxyCall]:
        # Under the lock: the parked `method` messages, taken out (in order), the others kept.
        taken = [m for m in self._parked if m.attr_path == (method,)]
        self._parked = [m for m in self._parked if m.attr_path != (method,)]
        return taken


def not_started(book: PairBook) -> frozenset[RequestId]:
    """The requests `book` holds that never started: queued behind another of the pair (conflict_policy = queue)
    or not started yet, no plan — nothing of them was stored or sent, so a stop answers them "nothing was sent",
    never "outcome unknown". Read by whoever releases the callers: the actor running the book, or a thread that
    runs none (then no actor does; a copy of the executions is read, an error reads as none)."""
    try:
        executions = list(book.active())
    except RuntimeError:  # the root's tracking-only book changed it meanwhile: as before, "outcome unknown"
        return frozenset()
    return frozenset(e.request.request_id for e in executions if e.stage is Stage.QUEUED or e.plan is None)


def _answer(futures: Sequence[Any], outcome: PlaceOutcome) -> None:
    for future in futures:
        if isinstance(future, concurrent.futures.Future) and not future.done():
            # answered meanwhile (a caller canceled it): nothing to do
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_result(outcome)


def _answer_cancels(messages: Iterable[ProxyCall], outcome: CancelOutcome) -> None:
    # Parked `cancel(request_id, reply)` messages nobody will carry out: each caller hears `outcome`, for its request.
    for message in messages:
        args, kwargs = message.args, message.kwargs
        request_id = RequestId(args[0] if args else kwargs.get("request_id", ""))
        reply = args[1] if len(args) > 1 else kwargs.get("reply")
        answer_cancel(reply, dataclasses.replace(outcome, request_id=request_id))


def _not_sent(pair: Pair, why: str, *, stopping: bool) -> CancelOutcome:
    """A parked cancel's answer when no actor will carry it out (`request_id` set per cancel)."""
    if stopping:
        return CancelOutcome(CancelStatus.SHUTTING_DOWN, pair, RequestId(""), f"{why}; the engine is stopping; the "
                             "cancel was not sent")  # fmt: skip
    return CancelOutcome(CancelStatus.UNAVAILABLE, pair, RequestId(""), f"{why}; the cancel was not sent; retry",
                         details={"retry": "1", "cause": "engine"})  # fmt: skip


def answer_cancel(reply: CancelReply | None, outcome: CancelOutcome | None) -> None:
    """Tell a caller's cancel what was done (`reply` may be None: the engine's own cancels have no caller)."""
    if reply is None:
        return
    try:
        reply(outcome)
    except Exception:  # noqa: BLE001 - the caller's side failing must not fail the actor that answers it
        logger.exception("answering a cancel failed")


def cancel_failed(pair: Pair, request_id: RequestId, cause: str = "restarting") -> CancelOutcome:
    """The answer to a cancel the pair's book failed on (logged; a pair actor crashes and is restarted): retry."""
    message = "the pair's book failed on the cancel (see the log); it may not have been sent; retry"
    return CancelOutcome(CancelStatus.UNAVAILABLE, pair, request_id, message, details={"retry": "1", "cause": cause})


def start_failures(book: PairBook) -> int:
    """How many actors in a row failed to start on `book` (its `restate` or `resume` raised): for the supervisor,
    which gives up on a book that cannot start even when its restarts are spread out past the budget's window."""
    return _Home.of(book).failed_starts


def release_callers(book: PairBook, reason: str) -> int:
    """Answer every caller still waiting on `book` (its actor is dead and will not be restarted).

    For the supervisor, when it gives up on a pair: requests the book holds are answered `outcome_unknown`
    (they may have orders at the exchange, which are tracked and reconciled), requests that never reached the
    book `halted`, and cancels still parked (the tracking-only book took none: it failed to) `unavailable`
    (retry: the root runs a halted pair's cancels), `shutting_down` while the engine stops. Returns how many
    callers were answered.
    """
    home = _Home.of(book)
    why = f"the pair actor stopped for good ({reason})"
    unknown = Refusal(RefusalReason.OUTCOME_UNKNOWN, f"{why}; its orders, if any, are tracked and reconciled")
    halted = Refusal(RefusalReason.HALTED, f"{why}; nothing was sent")
    return home.release(unknown, halted, cancel=_not_sent(book.pair, why, stopping=home.stopping))


def engine_stopping(book: PairBook) -> None:
    """The engine began to stop (the supervisor's `shutdown`): a cancel of `book`'s that nobody carries out from
    now on is answered `shutting_down`, not `unavailable` (a retry would find the engine stopped)."""
    _Home.of(book).stopping = True


def answer_at_stop(book: PairBook) -> int:
    """The engine stopped its actors (the supervisor, once it stopped the pair actors): answer every caller still
    waiting on `book` — a crashed actor's whose restart or give-up never came (its crash report was left behind
    the root's stop), and its orphan grace will not run (the ticker stops next). A live actor answers its own as
    it stops (`PairActor.on_stop`); one whose `on_failure` is still to run, when it has. Returns how many were
    answered now."""
    why = "the engine stopped"
    unknown = Refusal(RefusalReason.OUTCOME_UNKNOWN, f"{why} before the exchange confirmed the order; it may exist, "
                      "and is reconciled when the engine starts again")  # fmt: skip
    stopped = Refusal(RefusalReason.SHUTTING_DOWN, f"{why}; nothing was sent")
    return _Home.of(book).close(unknown, stopped, _not_sent(book.pair, "the pair actor is not running", stopping=True))


def reply_address(book: PairBook) -> Callable[[GatewayResult], None]:
    """Where gateway answers for `book` go: whichever actor runs it when the answer comes (parked while none
    does; the root's tracking-only book once `redirect_tells` was called). Stable across restarts."""
    return _Home.of(book).reply


def redirect_tells(book: PairBook, sink: Callable[[ProxyCall], None]) -> list[ProxyCall]:
    """For the supervisor, when it gives up on a pair: the tells left for its dead actor (salvaged from its
    inbox, or answers that arrived since), and `sink` for the ones still to come (gateway answers to the dead
    actor's requests). Callers' `place` messages are not among them: `release_callers` answers those."""
    return _Home.of(book).redirect(sink)


def _release_orphaned(home: _Home, generation: int, pair: Pair) -> None:
    # On the ticker's thread, ORPHAN_GRACE_MS after a crash: nobody took the book over (the engine halted past
    # its restart budget, or is stopping), so its callers would wait forever. They hear why instead.
    why = "the pair actor crashed and was not restarted"
    unknown = Refusal(RefusalReason.OUTCOME_UNKNOWN, f"{why}; its orders, if any, are tracked and reconciled")
    halted = Refusal(RefusalReason.HALTED, f"{why}; nothing was sent")
    cancel = _not_sent(pair, why, stopping=home.stopping)
    answered = home.release(unknown, halted, generation=generation, cancel=cancel)
    if answered:
        logger.bind(pair=pair).error("{} caller(s) answered: the crashed pair actor was not restarted", answered)
