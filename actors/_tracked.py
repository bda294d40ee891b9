"""The root's tracking-only books: pairs halted past the restart budget, and pairs outside the whitelist.

A tracking-only book never trades. Its records, events and alerts are carried out, its reports applied, its
orders looked up (read-only lookups answered to the root, never to the dead pair actor) and its timers run on
the root. A halted whitelisted pair (`_track_only`) may also cancel: its limits at their deadline (no
fallback follows), its caller's `cancel_order` (`cancel_tracked`) and the shutdown's cancel under
`on_shutdown = cancel` (`cancel_tracked_for_shutdown`) — an order of a halted pair must not rest until someone
notices. Outside the whitelist only the engine's own restored orders are looked up, and nothing is canceled.
A mixin of `RootActor` (its messages run on the root's thread).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from loguru import logger
from pykka.messages import ProxyCall

from actors._pair_home import CancelReply, answer_cancel, cancel_failed, send_cancel_ahead
from actors._state import survives
from actors._ticker import Ticker
from actors.pair import redirect_tells, stored_view
from engine.api import CancelOutcome, CancelStatus
from engine.clock import Clock
from engine.domain import Order, Pair, RequestId
from engine.exchange import MUTATING_OPERATIONS, ExecutionReport
from engine.gateway import GatewayResult, Op
from engine.pair import (
    PLAN_TIMER_PREFIX,
    Alert,
    CancelAhead,
    Command,
    Emit,
    Leg,
    LookupStored,
    PairBook,
    Persist,
    Schedule,
    Send,
    ShutdownTally,
    Unschedule,
    Withdraw,
    is_unknown,
)

__all__ = ["TrackedMixin"]

_ASK_TIMEOUT_S = 15.0
_LOOKUP_ATTEMPTS, _LOOKUP_RETRY_MS = 60, 5_000  # as the pair actor's: a stored-order lookup waits out 5 minutes
_READ_ONLY = frozenset({Op.FETCH_ORDER, Op.MY_TRADES, Op.OPEN_ORDERS})
"""What a tracking-only book may send: lookups only (an allow-list: an operation added later is not sent)."""
assert not {op.value for op in _READ_ONLY} & MUTATING_OPERATIONS
_TRACKED_TELLS = frozenset({"on_result", "on_report", "on_open_orders", "on_write_ahead_failed"})
"""Pair actor messages a tracking-only book takes: each is `PairBook.<name>(*args, now_ms)`."""

Reply = Callable[[GatewayResult], None]


class TrackedMixin:
    """The tracking-only books the root runs (see module docstring)."""

    gateway: Any
    _clock: Clock
    _self: Any
    _store: Any
    _bus: Any
    _publish: Callable[[Any], None]
    _alerts: Callable[[str, str], None]
    _books: dict[Pair, PairBook]
    _outside: dict[Pair, PairBook]
    _outside_own: dict[Pair, frozenset[str]]
    _held: dict[Pair, deque[Any]]
    _held_overflow: set[Pair]
    _stopping: bool
    _ticker: Ticker
    _timers: dict[str, int]
    _timer_lock: threading.Lock
    _timers_stopped: bool

    # ---- cancels of a halted pair ---------------------------------------------------------------------
    def cancel_tracked(self, pair: Pair, request_id: RequestId, reply: CancelReply | None = None) -> bool:
        """A caller's cancel for `pair` whose actor is not running (ask). True when the root runs the pair's
        book as a halted pair's (the cancel is carried out: what rests is canceled, no fallback follows); False
        when it does not (the actor is restarting, the pair is outside the whitelist, or the engine is stopping).
        Either way `reply` hears what was done (None: not in the book, the caller's side asks the database)."""
        book = self._outside.get(pair)
        if book is None or not book.cancels_allowed or self._stopping:
            answer_cancel(reply, self._not_tracked(pair, request_id))
            return False
        logger.bind(pair=pair, request_id=request_id).info("cancel of a halted pair's request, carried out by the root")
        answers: list[CancelOutcome | None] = []

        def cancel() -> list[Command]:
            commands, outcome = book.cancel_request(request_id, self._clock.now_ms())
            answers.append(outcome)
            return commands

        self._track(book, "cancel", cancel)
        answer_cancel(reply, answers[0] if answers else cancel_failed(pair, request_id, "engine"))
        return True

    def _not_tracked(self, pair: Pair, request_id: RequestId) -> CancelOutcome:
        if self._stopping:
            message = "the engine is stopping; the halted pair's cancel was not sent"
            return CancelOutcome(CancelStatus.SHUTTING_DOWN, pair, request_id, message)
        message = f"the {pair} actor is not running (restarting); nothing was sent; retry"
        return CancelOutcome(CancelStatus.UNAVAILABLE, pair, request_id, message, details={"retry": "1",
                             "cause": "restarting"})  # fmt: skip

    def cancel_tracked_for_shutdown(self, timeout_s: float) -> None:
        """Shutdown with `on_shutdown = cancel`: cancel every active request of the halted pairs, stored as the
        shutdown's cancel (`_tracked_tally` counts what came of it).

        Their answers cannot come as messages (the root is busy shutting down until it returns): they are
        collected here and applied to the books once the gateway has answered them, or `timeout_s` has passed.
        """
        answers: queue.SimpleQueue[tuple[PairBook, GatewayResult]] = queue.SimpleQueue()
        sent = 0
        for book in [b for b in self._outside.values() if b.cancels_allowed]:
            reply: Reply = partial(lambda b, result: answers.put((b, result)), book)
            for request_id in book.shutdown_requests():
                sent += self._carry_out(book, book.cancel_at_shutdown(request_id, self._clock.now_ms()), reply)
        received = 0
        while received < sent:
            try:
                book, result = answers.get(timeout=timeout_s)
            except queue.Empty:
                logger.warning("{} cancel answer(s) of halted pairs did not come before the shutdown went on",
                               sent - received)  # fmt: skip
                break
            received += 1
            self._track(book, "cancel result", partial(book.on_result, result, self._clock.now_ms()))

    def _tracked_tally(self) -> ShutdownTally:
        """The tracking-only books' orders as the shutdown leaves them: what its cancel did to a halted pair's
        (`cancel_tracked_for_shutdown`), and the open ones the root answers for (`_tracked_legs`), each once."""
        total = ShutdownTally()
        for book in self._outside.values():
            done, legs = book.shutdown_tally(), self._tracked_legs(book)
            left_open = tuple(sorted(leg.cid for leg in legs))  # named in the stop's line, as a pair actor's are
            unknown = tuple(leg.cid for leg in sorted(legs, key=lambda leg: leg.cid) if is_unknown(leg))
            total += ShutdownTally(done.canceled, done.ended_otherwise, len(legs), done.withdrawn, left_open=left_open,
                                   unknown=unknown)  # fmt: skip
        return total

    def _tracked_reconcilable(self, book: PairBook) -> list[Order]:
        """What a round looks up in a tracking-only book: every order for a whitelisted pair (halted), the
        engine's own orders only for a pair outside the whitelist (external ones there are not bounded)."""
        orders = book.reconcilable(tracking_only=True)
        if book.pair in self._books:
            return orders
        own = self._outside_own.get(book.pair, frozenset())
        return [order for order in orders if order.client_order_id in own]

    def _tracked_legs(self, book: PairBook) -> list[Leg]:
        """The open orders of a tracking-only book the root answers for (listed, counted as left open): all of a
        halted whitelisted pair's, only the engine's own restored ones outside the whitelist (an external order
        there is recorded from the stream only, and nothing would ever close it if its end were missed)."""
        legs = book.open_legs()
        if book.pair in self._books:
            return legs
        own = self._outside_own.get(book.pair, frozenset())
        return [leg for leg in legs if leg.cid in own]

    def _track_only(self, pair: Pair) -> None:
        """`pair`'s actor is not coming back: its book becomes tracking-only (records, events and alerts, and
        read-only lookups; no order is sent), with the reports held for it applied first."""
        book = self._outside[pair] = self._books[pair]
        book.tracking_only = True  # from now on it never creates an order; its limits end at their deadline
        book.cancels_allowed = True
        proxy = self._self
        # First what its dead actor left (older than the reports held here since), then the held reports;
        # the answers to its requests still in flight follow as messages (`on_tracked_tell`).
        left = redirect_tells(book, lambda message: proxy.on_tracked_tell.defer(pair, message))
        held = self._held.pop(pair, deque())
        if left or held or pair in self._held_overflow:
            logger.bind(pair=pair).warning("{} message(s) left by its actor and {} held report(s) go to the "
                                           "tracking-only book", len(left), len(held))  # fmt: skip
        self._held_overflow.discard(pair)
        try:
            # The order timers that died with the actor (a pending re-fetch of fills, lookups) run on the root now.
            self._carry_out(book, book.resume(self._clock.now_ms()))
        finally:
            # Even when that failed (it is raised on, and alerted): what was taken from the home is applied here
            # or nowhere, and a caller's cancel among it is answered only here (carried out, or why not).
            for message in left:
                self.on_tracked_tell(pair, message)
            for report in held:
                self._track_report(book, report)

    @survives
    def on_tracked_tell(self, pair: Pair, message: ProxyCall) -> None:
        """A tell meant for `pair`'s dead actor (left in its inbox, or a gateway answer to one of its requests)
        applied to the pair's tracking-only book: answers and reports, and a caller's cancel (a halted pair's, as
        `cancel_tracked` carries out: the caller was told it was taken). Prices would act on the market and are
        dropped, and so are timer tells (the book's timers are re-armed on the root from the book itself,
        `_track_only`); callers' requests are answered by `release_callers`."""
        book = self._outside.get(pair)
        name = message.attr_path[-1] if message.attr_path else ""
        if book is not None and name == "retry_lookup":  # a late report's stored-order lookup, tried again here
            if not self._stopping:
                self._lookup_stored(book, *message.args)
        elif name == "cancel":
            if not self.cancel_tracked(pair, *message.args):
                logger.bind(pair=pair, request_id=message.args[0]).warning("a caller's cancel not carried out: "
                                                                           "the pair is tracked only")  # fmt: skip
        elif book is None or name not in _TRACKED_TELLS:
            logger.bind(pair=pair).debug("tracking only: {} not carried out", name)
        elif name == "on_open_orders":  # a scan is a round's answer here too, as the actor would have taken it
            among = {o.client_order_id for o in self._tracked_reconcilable(book)}
            self._track(book, "open orders", partial(book.on_open_orders, message.args[0], self._clock.now_ms(),
                                                     reconcile=True, among=among))  # fmt: skip
        else:
            self._track(book, str(name), partial(getattr(book, str(name)), *message.args, self._clock.now_ms()))

    def _track_report(self, book: PairBook, report: ExecutionReport) -> None:
        self._track(book, "report", partial(book.on_report, report, self._clock.now_ms()))

    def _tracked_reply(self, pair: Pair) -> Callable[[GatewayResult], None]:
        proxy = self._self
        return lambda result: proxy.on_tracked_result.defer(pair, result)

    @survives
    def on_tracked_result(self, pair: Pair, result: GatewayResult) -> None:
        """The answer to a lookup the root sent for a tracking-only book (reconciliation and what follows it:
        an order's status, its missing fills)."""
        book = self._outside.get(pair)
        if book is not None:
            what = f"{result.request.op.value} result"
            self._track(book, what, partial(book.on_result, result, self._clock.now_ms()))

    def _track(self, book: PairBook, what: str, apply: Callable[[], list[Command]]) -> None:
        try:
            commands = apply()
        except Exception:  # noqa: BLE001 - the root must survive a book that cannot take what it is given
            logger.bind(pair=book.pair).exception("tracking-only book failed on a {}", what)
            return
        self._carry_out(book, commands)
        book.forget_finished()

    def _carry_out(self, book: PairBook, commands: list[Command], drain: Reply | None = None) -> int:
        """Carry out what a tracking-only book asks for; returns how many requests went to the gateway.

        A tracking-only book never trades: records, events, alerts, database lookups (a report for an order that
        left memory), read-only exchange lookups and, for a halted whitelisted pair, its timers and its cancels
        are carried out; creates and callers' answers are not. `drain`: the shutdown's own cancels, answered
        there (`cancel_tracked_for_shutdown`), the only requests sent once the shutdown began.
        """
        assert self._store is not None and self._bus is not None
        records = [c.item for c in commands if isinstance(c, Persist)]
        if records:
            self._store.save_many(records)
        sent = 0
        for command in commands:
            if isinstance(command, Emit):
                self._publish(command.event)  # the `Publisher`: inline listeners too, as from a pair actor
            elif isinstance(command, Alert):
                self._alerts(command.key, f"{book.pair} {command.client_order_id or ''}: {command.message}")
            elif isinstance(command, LookupStored):
                self._lookup_stored(book, command)
            elif isinstance(command, Send | CancelAhead) and self._may_send(book, command, drain is not None):
                # The answer comes back to the root (`on_tracked_result`), never to the dead pair actor.
                reply = drain or self._tracked_reply(book.pair)
                if isinstance(command, CancelAhead):
                    self._cancel_ahead(book, command, reply)
                else:
                    self.gateway.submit(replace(command.request, reply_to=reply, gate=None))
                sent += 1
            elif isinstance(command, Schedule | Unschedule):
                self._tracked_timer(book, command)
            elif isinstance(command, Withdraw):
                # The caller's cancel of a request whose create waits in the gateway (a Retry-After, its order
                # window): it must not leave when the wait ends (it did, and a canceled market order was filled).
                self.gateway.withdraw_create(command.client_order_id)
            elif not isinstance(command, Persist):
                logger.bind(pair=book.pair).debug("tracking only: {} not carried out", type(command).__name__)
        return sent

    def _cancel_ahead(self, book: PairBook, command: CancelAhead, reply: Reply) -> None:
        # As the pair actor does: the caller's cancel is stored with its request before it leaves, and leaves
        # whatever the commit's fate (the database may delay a cancel, never hold it back).
        try:
            send_cancel_ahead(command, lambda gate: self.gateway.submit(replace(command.send, reply_to=reply,
                                                                              gate=gate)), self._store)  # fmt: skip
        except Exception:  # noqa: BLE001 - the cancel still leaves; the failure is logged
            logger.bind(pair=book.pair, client_order_id=command.send.key).exception("storing a cancel failed")

    def _tracked_timer(self, book: PairBook, command: Schedule | Unschedule) -> None:
        # A tracking-only book keeps its order timers, run by the root: a re-fetch of missing fills, a status
        # re-check, an unknown outcome's next lookup. The book sends nothing but lookups (`tracking_only`)
        # and `_may_send` filters again. Same lock and handles as the root's cadences: none fires after
        # `shutdown` stopped the timers.
        pair = book.pair
        if command.key.startswith(PLAN_TIMER_PREFIX) and not book.cancels_allowed:
            return  # a plan's deadline leads to a cancel (a halted pair's only) or a fallback (never sent)
        name = f"tracked:{pair}:{command.key}"
        proxy = self._self
        with self._timer_lock:
            handle = self._timers.pop(name, None)
            if handle is not None:
                self._ticker.cancel(handle)
            if isinstance(command, Schedule) and not self._timers_stopped:
                delay = command.due_ms - self._clock.now_ms()
                key = command.key
                fire = lambda _now: proxy.on_tracked_timer.defer(pair, key)  # noqa: E731 - on the ticker's thread
                self._timers[name] = self._ticker.call_later(delay, fire)

    @survives
    def on_tracked_timer(self, pair: Pair, key: str) -> None:
        """A timer of a halted pair's tracking-only book is due (see `_tracked_timer`)."""
        with self._timer_lock:
            self._timers.pop(f"tracked:{pair}:{key}", None)
        book = self._outside.get(pair)
        if book is not None and not self._stopping:
            self._track(book, f"timer {key}", partial(book.on_timer, key, self._clock.now_ms()))

    def _may_send(self, book: PairBook, command: Send | CancelAhead, draining: bool = False) -> bool:
        # Lookups and a halted pair's cancels, and after the shutdown began only the shutdown's cancels: of a
        # halted whitelisted pair, any; outside the whitelist, lookups of the engine's own restored orders only
        # (not another's, nor external ones).
        request = command.send if isinstance(command, CancelAhead) else command.request
        if request.op is Op.CANCEL_ORDER and book.cancels_allowed:
            return draining or not self._stopping  # never a create
        if self._stopping or request.op not in _READ_ONLY:
            return False
        return book.pair in self._books or request.key in self._outside_own.get(book.pair, frozenset())

    def _lookup_stored(self, book: PairBook, command: LookupStored, attempt: int = 1) -> None:
        # As the pair actor does (ask down to persistence): the stored order, its fills and its trade; tried again
        # while the database is down (nothing else sees a late fill: reconciliation looks up orders in memory).
        cid = command.client_order_id
        try:
            order, fills, trade = stored_view(self._store.proxy, cid, _ASK_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - retried, then alerted
            from actors.persistence._text import lookup_failure

            level, text, why = lookup_failure(cid, exc, attempt, _LOOKUP_ATTEMPTS, _ASK_TIMEOUT_S, _LOOKUP_RETRY_MS)
            logger.bind(pair=book.pair, client_order_id=cid).log(level, text)
            if attempt >= _LOOKUP_ATTEMPTS:
                self._alerts("fills_missing", f"{book.pair} {cid}: a report for it was dropped ({why})")
                return
            pair, proxy = book.pair, self._self
            retry = ProxyCall(attr_path=("retry_lookup",), args=(command, attempt + 1), kwargs={})
            self._ticker.call_later(_LOOKUP_RETRY_MS, lambda _now: proxy.on_tracked_tell.defer(pair, retry))
            return
        self._carry_out(book, book.on_stored(command.sighting, order, fills, trade, self._clock.now_ms()))
