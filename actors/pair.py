"""The pair actor: one per pair; its inbox serializes everything about the pair.

A thin shell over `engine.pair.PairBook`: each message calls the book with the current time and carries out
the commands it returns — gateway sends (results come back as `on_result` tells), write-aheads (the create
leaves from the persistence thread once its intent is durable), timers on the ticker, events to the listener
bus, and completing callers' futures.

Finished requests leave memory once their trade is handed to persistence (`PairBook.forget_finished`); a replayed
idempotency key the book may have seen (its Bloom filter) is looked up in the database by its client order id.

A crash loses only the message that caused it (its records are stored again: `PairBook.restate`). The root
restarts a new actor over the same book; what the dead actor held outside the book lives in its `_Home`, kept on
the book: callers' futures (answered by the new actor), the reply address of gateway results (it reaches
whichever actor runs the book, parking results while none does), and the tells left in the dead actor's inbox
(salvaged in `on_failure`, handed to the new actor in order). A start that fails (the book's `restate` or
`resume` raises) is a crash too, reported and counted the same way. Callers' messages (`place`, `cancel`) and
gateway results go through the home, under the lock `on_failure` takes the inbox with: none is lost to the
crash. A tell sent straight to the actor that races the crash (sent while the actor looked alive, queued after
`on_failure` took the inbox) is still dropped by pykka: a report or a timer is recovered by the reconciliation
after every restart and the book's `resume`. A crashed pair actor that nobody restarts answers its callers
(placements and parked cancels) after `ORPHAN_GRACE_MS`, or at once when the root gives up on it or the engine
stops; what was parked for it goes to the root's tracking-only book (`redirect_tells`). A caller's `cancel`
carries its reply, answered once what it sends is queued (`shutting_down` if the actor stops first).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pykka
from loguru import logger
from pykka.messages import ProxyCall

from actors._events import log_event
from actors._pair_home import (
    CancelReply,
    GatewayLike,
    StoreLike,
    _Home,
    _release_orphaned,
    answer_cancel,
    cancel_failed,
    redirect_tells,
    release_callers,
    replayed_outcome,
    reply_address,
    send_cancel_ahead,
    stored_view,
)
from actors._ticker import Ticker
from engine.api import CancelOutcome, EngineEvent, EventKind, PlaceOutcome, Refusal, RefusalReason
from engine.api._lifecycle import mark_engine_thread
from engine.clock import Clock
from engine.domain import ClientOrderId, Order, OrderRequest, Pair, RequestId
from engine.gateway import GatewayRequest, GatewayResult
from engine.pair import (
    Alert,
    CancelAhead,
    Command,
    Emit,
    IntakeContext,
    LookupStored,
    PairBook,
    Persist,
    Resolve,
    Schedule,
    Send,
    ShutdownTally,
    Unschedule,
    Withdraw,
    WriteAhead,
    order_of,
)

__all__ = [
    "ORPHAN_GRACE_MS",
    "EventSink",
    "GatewayLike",
    "PairActor",
    "StoreLike",
    "redirect_tells",
    "release_callers",
    "reply_address",
    "stored_view",
]

_LOOKUP_TIMEOUT_S = 10.0
_LOOKUP_ATTEMPTS, _LOOKUP_RETRY_MS = 60, 5_000  # a stored-order lookup waits out a 5-minute database outage
ORPHAN_GRACE_MS = 30_000
"""How long (engine time) callers of a crashed pair actor wait for its restart before they are answered anyway."""


EventSink = Callable[[EngineEvent], None]
AlertSink = Callable[[str, str], None]


class PairActor(pykka.ThreadingActor):
    """Owns one `PairBook`; see module docstring."""

    def __init__(
        self,
        book: PairBook,
        *,
        gateway: GatewayLike,
        store: StoreLike,
        ticker: Ticker,
        clock: Clock,
        events: EventSink,
        alerts: AlertSink,
        intake: Callable[[], IntakeContext],
        on_crash: Callable[[Pair], None] | None = None,
    ) -> None:
        super().__init__()
        self._on_crash = on_crash
        self._book = book
        self._gateway = gateway
        self._store = store
        self._ticker = ticker
        self._clock = clock
        self._events = events
        self._alerts = alerts
        self._intake = intake
        book.intake = intake
        book.in_gateway = gateway.holds_create
        self._timers: dict[str, int] = {}
        self._self: Any = None
        self._home = _Home.of(book)
        # Stable across restarts: a result arriving after this actor died reaches the one that replaced it.
        self._reply: Callable[[GatewayResult], None] = self._home.reply
        # Attached here, in the starter's thread, before anyone can route to this actor: the messages the dead
        # predecessor left are the first in this inbox.
        salvaged = self._home.attach(self.actor_ref)
        if salvaged:
            logger.bind(pair=book.pair).warning("{} message(s) left by the crashed pair actor taken over", salvaged)

    def on_start(self) -> None:
        mark_engine_thread()  # inline listeners run here: a query of theirs would wait on this very actor
        self._self = self.actor_ref.proxy()
        try:
            if self._home.generation > 1:
                # A restart: the crashed message's records died with it; what the book knows is stored again.
                self._run(self._book.restate(self._clock.now_ms()))
            # After a restart the book still holds its orders; re-arm the timers that died with the old actor.
            self._run(self._book.resume(self._clock.now_ms()))
        except Exception as exc:  # noqa: BLE001 - a failed start is a crash, reported as one
            # pykka calls no `on_failure` when `on_start` raises: the supervisor would never hear of it (no
            # restart, no budget spent, callers never answered). Stopped first, as pykka does before
            # `on_failure`, so a tell from now on is parked for the next actor, not left in a dead inbox.
            self._home.failed_starts += 1
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            self.on_failure(type(exc), exc, exc.__traceback__)
            return
        self._home.failed_starts = 0
        logger.bind(pair=self._book.pair).debug("pair actor started")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        bound = logger.bind(pair=self._book.pair)
        bound.opt(exception=exception_value).error("pair actor crashed")
        for key in list(self._timers):
            self._ticker.cancel(self._timers.pop(key))
        # pykka drops the tells still queued here: park them (callers' requests, gateway results) for the
        # restarted actor. Its callers wait for it too — unless nobody runs the book again in time.
        parked, generation = self._home.detach(self.actor_ref, self.actor_inbox)
        if parked:
            bound.warning("{} queued message(s) kept for the restarted pair actor", parked)
        home, pair = self._home, self._book.pair
        self._ticker.call_later(ORPHAN_GRACE_MS, lambda _now: _release_orphaned(home, generation, pair))
        if self._on_crash is not None:
            self._on_crash(self._book.pair)

    def on_stop(self) -> None:
        for key in list(self._timers):
            self._ticker.cancel(self._timers.pop(key))
        # Requests queued behind the stop are answered too (pykka would drop them). Those the book started may have
        # an order at the exchange: "outcome unknown", never "not executed"; those it queued: "nothing was sent".
        self._home.detach(self.actor_ref, self.actor_inbox)
        self._home.drop_cancels(self._book.pair, "the pair actor stopped (the engine is stopping); nothing was sent")
        unknown = Refusal(RefusalReason.OUTCOME_UNKNOWN, "the engine stopped before the exchange confirmed the "
                          "order; it may exist, and is reconciled when the engine starts again")  # fmt: skip
        stopped = Refusal(RefusalReason.SHUTTING_DOWN, "the pair actor stopped; not started, nothing was sent")
        self._home.release(unknown, stopped)

    # ---- messages (all tells except the queries at the end) ----------------------------------------
    def place(self, request: OrderRequest, future: concurrent.futures.Future[PlaceOutcome]) -> None:
        """Execute a request; `future` receives the outcome (accepted at the ack, or a refusal)."""
        self._home.wait(request.request_id, future)
        try:
            cid = self._book.maybe_seen(request)
            if cid is not None and self._replayed(request, cid):
                return
            commands = self._book.place(request, self._clock.now_ms(), self._intake())
        except Exception as exc:  # noqa: BLE001 - a request never kills its pair: it is refused and logged
            logger.bind(pair=self._book.pair, request_id=request.request_id).exception("request intake failed")
            # Nothing the book produced for it was carried out: it forgets the request, the caller hears why.
            self._book.discard(request.request_id)
            refusal = Refusal(RefusalReason.INVALID_REQUEST, f"the request could not be taken: {type(exc).__name__}")
            self._home.resolve(request.request_id, refusal)
            return
        self._run(commands)

    def _replayed(self, request: OrderRequest, cid: ClientOrderId) -> bool:
        """Answer a replayed key from the database; False when it is new after all (a Bloom false positive)."""
        outcome = replayed_outcome(self._store.proxy, request, cid, _LOOKUP_TIMEOUT_S)
        if outcome is None:
            return False
        self._home.resolve(request.request_id, outcome)
        return True

    def on_result(self, result: GatewayResult) -> None:
        """A gateway result for one of this pair's requests."""
        self._run(self._book.on_result(result, self._clock.now_ms()))

    def on_timer(self, key: str) -> None:
        """A timer fired."""
        self._timers.pop(key, None)
        self._run(self._book.on_timer(key, self._clock.now_ms()))

    def on_price(self, bid: Decimal | None, ask: Decimal | None) -> None:
        """The latest best bid/ask of the pair."""
        self._run(self._book.on_price(bid, ask, self._clock.now_ms()))

    def on_report(self, report: object) -> None:
        """An execution report from the user data stream."""
        self._run(self._book.on_report(report, self._clock.now_ms()))

    def on_open_orders(self, result: GatewayResult) -> None:
        """The exchange's open orders of this pair: reconciliation's answer (`PairBook.on_open_orders`)."""
        self._run(self._book.on_open_orders(result, self._clock.now_ms(), reconcile=True))

    def cancel(self, request_id: RequestId, reply: CancelReply | None = None) -> None:
        """Cancel a request (no fallback follows); `reply` hears what was done, once its cancels are queued."""
        outcome: CancelOutcome | None = cancel_failed(self._book.pair, request_id)  # should the book raise
        try:
            commands, outcome = self._book.cancel_request(request_id, self._clock.now_ms())
            self._run(commands)
        finally:
            answer_cancel(reply, outcome)

    def cancel_all(self) -> None:
        """The shutdown's cancel of every active request (no fallback; ask): `shutdown_tally` counts what came of it."""
        for request_id in self._book.shutdown_requests():
            self._run(self._book.cancel_at_shutdown(request_id, self._clock.now_ms()))

    def shutdown_tally(self) -> ShutdownTally:
        """The pair's orders as the shutdown leaves them (ask): canceled, ended otherwise, open; each once."""
        return self._book.shutdown_tally()

    def crash(self) -> None:
        """Raise inside the actor (tests use it, with `.defer`, to prove supervision)."""
        raise RuntimeError(f"pair actor {self._book.pair} crashed on request")

    # ---- queries (asks) -----------------------------------------------------------------------------
    def open_orders(self) -> list[Order]:
        """Orders of this pair that are not terminal."""
        return [order_of(leg) for leg in self._book.open_legs()]

    def reconcilable_orders(self) -> list[Order]:
        """The orders reconciliation should look up (`PairBook.reconcilable`)."""
        return self._book.reconcilable()

    def get_order(self, cid: ClientOrderId) -> Order | None:
        """One order of this pair, if in memory."""
        leg = self._book.leg(cid)
        return order_of(leg) if leg is not None else None

    def active_requests(self) -> list[RequestId]:
        """Requests still executing."""
        return [e.request.request_id for e in self._book.active()]

    # ---- carrying out commands ----------------------------------------------------------------------
    def _run(self, commands: list[Command]) -> None:
        finished = False
        # Callers waiting for an answer get it before the book-keeping that follows it (records, events):
        # the answer is already decided, and nothing after it can change it.
        for command in commands:
            if isinstance(command, Resolve):
                self._resolve(command.request_id, command.outcome)
        # The records of one message go to persistence as one tell. Those ahead of a write-ahead (its request,
        # a primary's cancel before its fallback) ride with it, in its commit: the intent is never durable
        # without them.
        records: list[Any] = []
        for command in commands:
            if isinstance(command, Resolve):
                continue
            if isinstance(command, Persist):
                records.append(command.item)
                continue
            finished = finished or (isinstance(command, Emit) and command.event.kind is EventKind.DONE)
            try:
                if isinstance(command, WriteAhead):
                    self._write_ahead(command, records)
                    records = []
                elif isinstance(command, CancelAhead):
                    self._cancel_ahead(command, records)
                    records = []
                else:
                    self._do(command)
            except Exception:  # noqa: BLE001 - one failed command must not lose the rest; it is logged
                logger.bind(pair=self._book.pair).exception("command {} failed", type(command).__name__)
        if records:
            self._save(records)
        if finished:
            # The trade was handed to persistence above (its inbox keeps order, so a later lookup sees it).
            self._book.forget_finished()

    def _do(self, command: Command) -> None:
        """Carry out one command (`_run` handles `Resolve`, `Persist` and `WriteAhead` itself)."""
        if isinstance(command, Send):
            self._send(command.request)
        elif isinstance(command, Schedule):
            self._schedule(command.key, command.due_ms)
        elif isinstance(command, Unschedule):
            handle = self._timers.pop(command.key, None)
            if handle is not None:
                self._ticker.cancel(handle)
        elif isinstance(command, Emit):
            self._events(command.event)  # first: an inline listener is on the fill's latency path, the log is not
            log_event(command.event)
        elif isinstance(command, Alert):
            self._alerts(command.key, f"{self._book.pair} {command.client_order_id or ''}: {command.message}")
        elif isinstance(command, LookupStored):
            self._lookup_stored(command)
        elif isinstance(command, Withdraw):
            self._gateway.withdraw_create(command.client_order_id)

    def _lookup_stored(self, command: LookupStored, attempt: int = 1) -> None:
        # Rare (a report after the order left memory, or an order to adopt): a blocking ask keeps the book's order
        # of events. While the database is down the sighting is tried again: nothing else sees a late fill.
        cid = command.client_order_id
        try:
            order, fills, trade = stored_view(self._store.proxy, cid, _LOOKUP_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - retried, then alerted
            from actors.persistence._text import lookup_failure

            level, text, why = lookup_failure(cid, exc, attempt, _LOOKUP_ATTEMPTS, _LOOKUP_TIMEOUT_S, _LOOKUP_RETRY_MS)
            logger.bind(pair=self._book.pair, client_order_id=cid).log(level, text)
            # Through the home: this actor may have been replaced (or be dead) when the retry is due.
            home, retry = self._home, ProxyCall(attr_path=("retry_lookup",), args=(command, attempt + 1), kwargs={})
            if attempt < _LOOKUP_ATTEMPTS:
                self._ticker.call_later(_LOOKUP_RETRY_MS, lambda _now: home.tell(retry))
            else:
                self._alerts("fills_missing", f"{self._book.pair} {cid}: a report for it was dropped ({why})")
            return
        self._run(self._book.on_stored(command.sighting, order, fills, trade, self._clock.now_ms()))

    def retry_lookup(self, command: LookupStored, attempt: int) -> None:
        """A stored-order lookup that failed (the database was down), tried again."""
        self._lookup_stored(command, attempt)

    def _resolve(self, request_id: RequestId, outcome: PlaceOutcome) -> None:
        self._home.resolve(request_id, outcome)

    def _save(self, records: list[Any]) -> None:
        try:
            self._store.save_many(records)
        except Exception:  # noqa: BLE001 - as for any command: logged, the rest still runs
            logger.bind(pair=self._book.pair).exception("storing {} records failed", len(records))

    def _send(self, request: GatewayRequest, gate: concurrent.futures.Future[None] | None = None) -> None:
        """Submit the book's request with this actor as the reply address (and the create's gate, if any)."""
        self._gateway.submit(GatewayRequest(request.op, request.params, request.priority, request.key, request.pair,
                                            self._reply, request.weight, gate=gate))  # fmt: skip

    def _write_ahead(self, command: WriteAhead, companions: list[Any]) -> None:
        # The create goes to the gateway now, gated: ccxt prepares and signs it while the intent commits, and
        # its bytes leave only once the commit is done (engine.venue._gate) — never before. This actor does
        # not wait for either. A failed write-ahead comes back as a message: the create never left.
        cid = command.order.client_order_id
        durable: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._send(command.send, durable)
        home = self._home

        def failed(exc: BaseException) -> None:
            durable.set_exception(exc)
            # Through the home: this actor may have been replaced by the time persistence gives up.
            home.tell(ProxyCall(attr_path=("on_write_ahead_failed",), args=(cid, repr(exc)), kwargs={}))

        try:
            self._store.write_ahead_then(command.order, lambda: durable.set_result(None), failed, companions)
        except Exception as exc:
            # Persistence could not even take it: close the gate (the create already queued is dropped, not
            # left waiting forever) and fail the order as any failed write-ahead.
            failed(exc)
            raise

    def _cancel_ahead(self, command: CancelAhead, companions: list[Any]) -> None:
        # Gated like a create, but on a gate that opens whatever the commit's fate (`send_cancel_ahead`).
        send_cancel_ahead(command, lambda gate: self._send(command.send, gate), self._store, companions)

    def on_write_ahead_failed(self, cid: ClientOrderId, message: str) -> None:
        """The intent of `cid` could not be stored: its create was not sent."""
        logger.bind(pair=self._book.pair, client_order_id=cid).error("write-ahead failed: {}", message)
        self._run(self._book.on_write_ahead_failed(cid, message, self._clock.now_ms()))

    def _schedule(self, key: str, due_ms: int) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            self._ticker.cancel(old)
        proxy = self._self
        self._timers[key] = self._ticker.call_at(due_ms, lambda _now: proxy.on_timer.defer(key))
