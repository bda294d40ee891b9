"""What outlives one pair actor, and the answers to its callers when no actor runs its book.

`_Home` is kept on the `PairBook` (see `actors.pair` for the crash story): callers' futures, the reply address
of gateway results, and the messages a dead actor left in its inbox. `release_callers` (for the supervisor) and
`_release_orphaned` (on the ticker, after `actors.pair.ORPHAN_GRACE_MS`) answer callers nobody else will;
`redirect_tells` (for the supervisor, past the restart budget) sends what would have waited for an actor that
never comes to the root's tracking-only book instead; `start_failures` tells it of a book no actor can start;
`stored_view` asks persistence for an order that left the book's memory, `replayed_outcome` for the answer to
a replayed idempotency key. `GatewayLike` and `StoreLike` are what the pair actor needs of the gateway and persistence.
A caller's cancel carries a `CancelReply` (`Engine.cancel_order`'s future): `answer_cancel` answers it, whichever
actor (the pair's, or the root for a halted pair) carried the cancel out, and `send_cancel_ahead` sends it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pykka
from loguru import logger
from pykka.messages import ProxyCall

from engine.api import CancelOutcome, CancelStatus, PlaceOutcome, Refusal, RefusalReason
from engine.domain import ClientOrderId, Order, OrderRequest, OrderStatus, Pair, RequestId
from engine.gateway import GatewayRequest, GatewayResult
from engine.pair import CancelAhead, PairBook, key_reused, replay_outcome

__all__ = [
    "CancelReply",
    "GatewayLike",
    "StoreLike",
    "Waiter",
    "_Home",
    "_release_orphaned",
    "answer_cancel",
    "cancel_failed",
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


class StoreLike(Protocol):
    """What the pair actor needs of persistence (`actors.persistence.PersistenceHandle`)."""

    proxy: Any
    """The persistence actor's proxy (queries: `get_order(cid)` → future)."""

    def save_many(self, records: Sequence[Any]) -> None:
        """Fire-and-forget store of several records, in order, as one message."""

    def write_ahead_then(
        self,
        record: Any,
        on_durable: Callable[[], None],
        on_failed: Callable[[BaseException], None],
        companions: Sequence[Any] = (),
    ) -> None:
        """Store `record` with `companions` in one commit; call `on_durable()` once they are durable, else
        `on_failed(error)` (both on the persistence thread)."""


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
        self.failed_starts = 0
        """Actors in a row whose start failed on this book (0 once one starts): see `start_failures`."""

    @staticmethod
    def of(book: PairBook) -> _Home:
        """The home kept on `book` (made on first use)."""
        if not isinstance(book.actor_state, _Home):
            book.actor_state = _Home()
        home: _Home = book.actor_state
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
        (pykka answers them with `ActorDeadError`). Returns (messages parked, the generation it had)."""
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
            return len(tells), self._generation

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
        way the restarted actor takes it, or `release` answers a `place`. Told straight to the actor, a message
        sent while the actor still looked alive and queued after `detach` took the inbox was dropped by pykka: a
        request's caller was never answered, a cancel never carried out.
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
            cancels = [m for m in self._parked if m.attr_path == ("cancel",)]
            self._parked = [m for m in self._parked if m.attr_path != ("cancel",)]
        for message in cancels:
            if len(message.args) > 1:
                request_id = message.args[0]
                answer_cancel(message.args[1], CancelOutcome(CancelStatus.SHUTTING_DOWN, pair, request_id, why))
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

    def release(self, outcome: PlaceOutcome, placed: PlaceOutcome, *, generation: int | None = None) -> int:
        """Answer every caller: waiters of requests the book holds with `outcome`, parked `place` messages
        (never seen by the book) with `placed`. With `generation`, only if no actor ran the book since.
        Returns how many callers were answered."""
        with self._lock:
            if generation is not None and (generation != self._generation or self._actor is not None):
                return 0
            waiting = [f for futures in self._waiters.values() for f in futures]
            self._waiters.clear()
            places = [m for m in self._parked if m.attr_path == ("place",)]
            self._parked = [m for m in self._parked if m.attr_path != ("place",)]
        _answer(waiting, outcome)
        _answer([m.args[1] for m in places if len(m.args) > 1], placed)
        return len(waiting) + len(places)


def _answer(futures: Sequence[Any], outcome: PlaceOutcome) -> None:
    for future in futures:
        if isinstance(future, concurrent.futures.Future) and not future.done():
            # answered meanwhile (a caller canceled it): nothing to do
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_result(outcome)


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


def send_cancel_ahead(
    command: CancelAhead, send: Callable[[concurrent.futures.Future[None]], None], store: StoreLike,
    companions: Sequence[Any] = (),
) -> None:  # fmt: skip
    """Carry out a `CancelAhead`: `send(gate)` queues the cancel at the gateway behind `gate`, which opens once its
    record (with `companions`) is stored — or once storing it failed: the database may delay a cancel by one
    commit, never hold it back (a failure is logged: only a crash before the retry would then matter). Raises
    what `store` raises, the gate opened first."""
    stored: concurrent.futures.Future[None] = concurrent.futures.Future()
    bound = logger.bind(pair=command.send.pair, client_order_id=command.send.key)

    def open_gate(exc: BaseException | None = None) -> None:
        if exc is not None:
            bound.error("the caller's cancel leaves with its request's cancel not stored: {}", exc)
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            stored.set_result(None)

    send(stored)
    try:
        store.write_ahead_then(command.record, open_gate, open_gate, companions)
    except Exception as exc:
        open_gate(exc)
        raise


def stored_view(store: Any, cid: ClientOrderId, timeout_s: float) -> tuple[Order | None, list[Any], Any]:  # float-ok: s
    """What `PairBook.on_stored` needs of an order that left memory: the stored order, its fills and its
    request's trade, asked of persistence (`store`: its proxy). Raises what the asks raise."""
    order = store.get_order(cid).get(timeout=timeout_s)
    if order is None:
        return None, [], None
    return order, store.fills_of(cid).get(timeout=timeout_s), store.get_trade(order.request_id).get(timeout=timeout_s)


def start_failures(book: PairBook) -> int:
    """How many actors in a row failed to start on `book` (its `restate` or `resume` raised): for the supervisor,
    which gives up on a book that cannot start even when its restarts are spread out past the budget's window."""
    return _Home.of(book).failed_starts


def replayed_outcome(
    store: Any,
    request: OrderRequest,
    cid: ClientOrderId,
    timeout_s: float,  # float-ok: seconds
) -> PlaceOutcome | None:
    """The answer to a replayed idempotency key whose primary order is `cid`, from the database (`store`:
    persistence's proxy); None when no such order was stored (the key is new after all: a Bloom false positive).
    A lookup that fails is a `conflict` to retry later: placing the request again could duplicate it."""
    bound = logger.bind(pair=request.pair, client_order_id=cid)
    try:
        order = store.get_order(cid).get(timeout=timeout_s)
        stored = None if order is None else store.request_of(order.request_id).get(timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - any failure: we cannot tell, so do not risk a duplicate
        bound.error("idempotency lookup failed: {}", exc)
        return Refusal(
            RefusalReason.CONFLICT, f"cannot check the idempotency key now ({exc}); retry later", {"retry": "1"}
        )
    if order is None:
        return None
    reused = None if stored is None else key_reused(stored.request, request)
    if reused is not None:
        bound.warning("idempotency key reused for another request: {}", reused.message)
        return reused
    if order.status is OrderStatus.REJECTED:
        # its fallback may have executed the request: answer with that order, not "rejected"
        children = store.children_of(cid).get(timeout=timeout_s)
        order = next((c for c in children if c.status is not OrderStatus.REJECTED), order)
    bound.info("idempotency key replayed; answering from the database")
    return replay_outcome(order)


def release_callers(book: PairBook, reason: str) -> int:
    """Answer every caller still waiting on `book` (its actor is dead and will not be restarted).

    For the supervisor, when it gives up on a pair: requests the book holds are answered `outcome_unknown`
    (they may have orders at the exchange, which are tracked and reconciled), requests that never reached the
    book `halted`. Returns how many callers were answered.
    """
    unknown = Refusal(RefusalReason.OUTCOME_UNKNOWN, f"the pair actor stopped for good ({reason}); its orders, "
                      "if any, are tracked and reconciled")  # fmt: skip
    halted = Refusal(RefusalReason.HALTED, f"the pair actor stopped for good ({reason}); nothing was sent")
    return _Home.of(book).release(unknown, halted)


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
    unknown = Refusal(RefusalReason.OUTCOME_UNKNOWN, "the pair actor crashed and was not restarted; its orders, "
                      "if any, are tracked and reconciled")  # fmt: skip
    halted = Refusal(RefusalReason.HALTED, "the pair actor crashed and was not restarted; nothing was sent")
    answered = home.release(unknown, halted, generation=generation)
    if answered:
        logger.bind(pair=pair).error("{} caller(s) answered: the crashed pair actor was not restarted", answered)
