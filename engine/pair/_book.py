"""The pair book: everything about one pair's requests and orders, as pure code.

The pair actor feeds it what happens (a request, a gateway result, an execution report, a timer, a price) with the
time, and carries out the commands it returns (`engine.pair._commands`); nothing here blocks, sleeps, reads a clock
or does I/O, so every scenario is testable by calling methods in order.

Two halves. `OrderDesk` (`_orders`) keeps the orders: legs, write-ahead, unknown outcomes, cancels, missing
fills, records and events. This class keeps the requests: intake (risk manager, wallet, conflicts), the idempotency
keys, the caller's answer, and one `engine.execution.ExecutionPlan` per request, which alone decides the limit →
fallback policy. In its base `PlanBook` (`_plans`), order facts become plan events (`LegAcked`, `LegFilled`,
`LegClosed` with the exchange's cumulative quantity, `LegFailed`, …) and plan commands become order commands
(`PlaceOrder` → a leg written ahead and sent, `CancelOrder` → a cancel, `next_deadline_ms` → a timer, `ReportResult`
→ the stored `Trade` and the DONE event). The book adds one thing the plan cannot know: the summary waits
(SETTLING) for fills the exchange counted but whose details are still being fetched.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from loguru import logger

from engine.api import CancelOutcome, CancelStatus, PlaceOutcome, Refusal, RefusalReason
from engine.domain import ClientOrderId, Order, OrderRequest, OrderRole, Pair, RequestId, RequestRecord
from engine.exchange import Resolution
from engine.execution import (
    Abort,
    Book,
    DefaultRiskManager,
    ExecutionPlan,
    PriceUpdate,
    RiskManager,
    SymbolRules,
    Tick,
    VolatilityMonitor,
)
from engine.gateway import Op
from engine.pair._cancel_answer import cancel_answer, loose_cancel_answer
from engine.pair._commands import CancelAhead, Command, Persist, Resolve, Send
from engine.pair._intake import IntakeContext, check_intake
from engine.pair._legs import RECONCILED, Execution, Leg, Stage, order_of, trade_of
from engine.pair._outcomes import WithdrawnKeys, key_reused, refusal_of, replay_outcome
from engine.pair._plans import PlanBook
from engine.pair._records import fill_of
from engine.pair._seen import SeenKeys
from engine.pair._settings import PairSettings
from engine.pair._shutdown import SHUTDOWN_CANCEL, ShutdownCancels, ShutdownTally

__all__ = ["PairBook"]

_BY_CALLER = "canceled by the caller"


class PairBook(PlanBook):
    """Pure state of one pair (see module docstring). Methods return the commands to carry out."""

    def __init__(
        self,
        pair: Pair,
        rules: SymbolRules,
        settings: PairSettings,
        *,
        risk: RiskManager | None = None,
        seen: SeenKeys | None = None,
    ) -> None:
        super().__init__(pair, rules, settings)
        self.risk: RiskManager = risk or DefaultRiskManager()
        self.book = Book(None, None, 0)
        self._volatility = VolatilityMonitor(settings.volatility_window_ms, settings.volatility_trigger)
        self._execs: dict[RequestId, Execution] = {}
        self._by_key: dict[str, RequestId] = {}
        self._queued: deque[RequestId] = deque()
        self._seen = seen if seen is not None else SeenKeys(capacity=100_000)
        self._shutdown = ShutdownCancels()
        self._withdrawn = WithdrawnKeys()
        self.intake: Callable[[], IntakeContext] = IntakeContext
        """The engine-wide intake facts as they are now, read when a queued request starts: a halt or the kill
        switch may have come while it waited. The pair actor points it at the engine's state."""
        self.actor_state: Any = None
        """Kept here for the actor that runs this book (its callers' futures, where its results go): the book
        outlives an actor that crashes, and the restarted actor takes over what the dead one left. The book
        itself never reads it."""

    # ---- queries ------------------------------------------------------------------------------------
    def leg(self, cid: ClientOrderId) -> Leg | None:
        """The leg with this client order id: the engine's, or the one the exchange gave the order when it was
        amended outside the engine."""
        leg = self._legs.get(cid)
        if leg is None and (alias := self._aliases.get(cid)) is not None:
            leg = self._legs.get(alias[0])
        return leg

    def execution(self, request_id: RequestId) -> Execution | None:
        """The execution of a request."""
        return self._execs.get(request_id)

    def open_legs(self) -> list[Leg]:
        """Legs not yet terminal."""
        return [leg for leg in self._legs.values() if not leg.terminal]

    def reconcilable(self, *, tracking_only: bool = False) -> list[Order]:
        """The orders reconciliation looks up: the live ones (their state may have moved while events were lost)
        and those whose create outcome stayed unknown after every lookup (nothing else asks about them). Orders
        still being resolved, or not sent yet, are left to their own path — except in a tracking-only book
        (`tracking_only`: run by the root past the restart budget, with no timers), where reconciliation is
        their only path: every unfinished order is looked up (a lookup by client order id is read-only)."""
        return [
            order_of(leg)
            for leg in self._legs.values()
            if not leg.terminal
            and (
                tracking_only
                or leg.state.status in RECONCILED
                or (leg.resolver is not None and leg.resolver.state is Resolution.GAVE_UP)
            )
        ]

    def restate(self, now_ms: int) -> list[Command]:
        """Every record the book holds, to store again after its actor crashed (before `resume`).

        A crash loses the message that caused it — and the records that message had already produced: the
        book's state moved on (a fill applied, an order closed, a request done), but their `Persist` commands
        were never carried out, and nothing would produce them again (the fill is known, so a refetch adds
        nothing). Storing every leg's fills and order, every canceled request's cancel, every fallback's wait
        (FALLBACK_WAIT: a restart resumes it) and every finished request's trade again is idempotent (fills are
        inserted once, orders and trades only move forward, a request's cancel is never cleared, a wait told
        again is the same wait).
        """
        out: list[Command] = []
        for leg in self._legs.values():
            out.extend(Persist(fill_of(leg, fill, self.settings.exchange)) for fill in leg.state.fills)
            out.append(Persist(order_of(leg)))
        for execution in self._execs.values():
            if execution.canceled is not None:
                out.append(Persist(execution.canceled))
            record = self._retry_record(execution)
            if record is not None:
                # A plan waiting to re-send its fallback: without it, the failed order's rejected row (stored just
                # above) would read as a rejection after a restart, and the remainder would never be sent.
                out.append(Persist(record))
            if execution.stage is Stage.DONE and execution.result is not None:
                legs = [self._legs[c] for c in execution.legs if c in self._legs]
                out.append(Persist(trade_of(execution, execution.result, legs, now_ms, self.rules.floor_qty)))
        return out

    def active(self) -> list[Execution]:
        """Executions not yet done."""
        return [e for e in self._execs.values() if e.stage is not Stage.DONE]

    # ---- intake -------------------------------------------------------------------------------------
    def place(self, request: OrderRequest, now_ms: int, ctx: IntakeContext) -> list[Command]:
        """A new request: refuse it, replay it (same idempotency key), queue it, or start executing it."""
        self._out = []
        known = self._by_key.get(request.idempotency_key)
        if known is not None:
            self._replay(request, known)
            return self._take()
        withdrawn = self._withdrawn.answer(request)
        if withdrawn is not None:  # its key was withdrawn before it started: a retry must not revive it
            self._out.append(Resolve(request.request_id, withdrawn))
            return self._take()
        refusal = self._intake_refusal(request, ctx)
        if refusal is not None:
            self._out.append(Resolve(request.request_id, refusal))
            return self._take()
        execution = Execution(request, now_ms)
        self._execs[request.request_id] = execution
        self._by_key[request.idempotency_key] = request.request_id
        if self.settings.conflict_policy == "queue" and len(self.active()) > 1:
            # "queue": another request of the pair executes; this one starts when the pair is free. (Under "refuse"
            # check_intake refused it; under "parallel" it starts now beside those of its side: its own plan, timer,
            # orders and trade.)
            execution.stage = Stage.QUEUED
            self._queued.append(request.request_id)
            logger.bind(pair=self.pair, request_id=request.request_id).info(
                "request queued behind {} of the pair (conflict_policy = queue)", len(self.active()) - 1
            )
            return self._take()
        self._try_start(execution, now_ms)
        return self._take()

    def _intake_refusal(self, request: OrderRequest, ctx: IntakeContext) -> Refusal | None:
        try:
            return check_intake(request, self, ctx)
        except (ArithmeticError, ValueError) as exc:
            # Numbers the request's validation let through but the arithmetic cannot take (an overflowing
            # notional, a risk manager's own error): a bad request, refused — never a crashed pair.
            logger.bind(pair=self.pair, request_id=request.request_id).error("intake check failed: {!r}", exc)
            return Refusal(RefusalReason.INVALID_REQUEST, f"the request cannot be checked: {type(exc).__name__}")

    def _try_start(self, execution: Execution, now_ms: int) -> None:
        """`_start`, but a request whose numbers break the plan's arithmetic is refused as invalid."""
        mark = len(self._out)
        try:
            self._start(execution, now_ms)
        except (ArithmeticError, ValueError) as exc:
            request = execution.request
            logger.bind(pair=self.pair, request_id=request.request_id).error("request cannot start: {!r}", exc)
            # Nothing it produced was carried out (the commands are returned, not run): forget all of it.
            del self._out[mark:]
            self.discard(request.request_id)
            refusal = Refusal(RefusalReason.INVALID_REQUEST, f"the request cannot be executed: {type(exc).__name__}")
            self._refuse(execution, refusal)
            self._start_next(now_ms)

    def discard(self, request_id: RequestId) -> None:
        """Forget a request none of whose commands were carried out (its intake failed unexpectedly)."""
        execution = self._execs.pop(request_id, None)
        if execution is None:
            return
        if self._by_key.get(execution.request.idempotency_key) == request_id:
            del self._by_key[execution.request.idempotency_key]
        if request_id in self._queued:
            self._queued.remove(request_id)
        for cid in execution.legs:
            self._legs.pop(cid, None)

    def _replay(self, request: OrderRequest, known: RequestId) -> None:
        execution = self._execs[known]
        reused = key_reused(execution.request, request)
        if reused is not None:
            self._out.append(Resolve(request.request_id, reused))
            return
        legs = [self._legs[c] for c in execution.legs if c in self._legs]
        primary = legs[0] if legs else None
        accepted = next((leg for leg in legs if leg.acked), None)
        if accepted is not None:
            self._out.append(Resolve(request.request_id, replay_outcome(order_of(accepted))))
            return
        if primary is not None and primary.terminal and execution.stage is Stage.DONE:
            # Nothing was ever accepted and the request is over: the primary's rejection is the answer. While
            # a fallback may still execute the request, "rejected" would be wrong (the caller would resend).
            self._out.append(Resolve(request.request_id, replay_outcome(order_of(primary))))
            return
        if execution.stage is not Stage.DONE:
            # On its way, nothing accepted yet (a create waiting out a Retry-After): answered as a duplicate at the
            # first ack, or at the end. A refusal here read as "not placed" to a caller retrying a timed-out call.
            execution.replays.append(request)
            return
        outcome = refusal_of(execution.result, primary.cid if primary else None) if execution.result else None
        self._out.append(Resolve(request.request_id, outcome or Refusal(RefusalReason.CONFLICT, "the same idempotency "
                                 "key was being executed", {"request_id": known})))  # fmt: skip

    def _refuse(self, execution: Execution, refusal: PlaceOutcome) -> None:
        # Ended with nothing placed: the duplicates that waited for it hear what it heard (they were never answered).
        for request in (execution.request, *execution.replays):
            self._out.append(Resolve(request.request_id, refusal))
        execution.replays = []

    def _answer_replays(self, execution: Execution) -> None:
        waiting, execution.replays = execution.replays, []
        for request in waiting:
            self._replay(request, execution.request.request_id)

    def _start(self, execution: Execution, now_ms: int) -> None:
        request = execution.request
        execution.stage = Stage.WORKING
        volatile = self._volatility.triggered(now_ms)
        plan, commands = ExecutionPlan.start(
            request, self.rules, self.book, now_ms, self.settings.execution, volatile=volatile
        )
        execution.plan = plan
        if plan.result is not None and not plan.leg_ids():
            # Refused before anything was placed (filters, no price): an answer, not an execution.
            self._execs.pop(request.request_id, None)
            self._by_key.pop(request.idempotency_key, None)
            self._refuse(execution, refusal_of(plan.result))
            self._start_next(now_ms)
            return
        self._seen.add(request.idempotency_key)
        # Stored with the first order's write-ahead (same commit): what a restart resumes the plan from.
        self._out.append(Persist(RequestRecord.of(request, plan.reference_price, self.settings.exchange)))
        if plan.skipped_wait:
            execution.story.append("volatile market: no wait for the limit")
        self._carry(execution, commands, now_ms)

    # ---- timers, prices, cancels --------------------------------------------------------------------
    def on_timer(self, key: str, now_ms: int) -> list[Command]:
        """A timer scheduled by this book fired."""
        self._out = []
        kind, _, ident = key.partition(":")
        if kind == "plan":
            execution = self._execs.get(RequestId(ident))
            if execution is not None:
                execution.deadline_ms = None  # it fired; `_sync_timer` re-arms what the plan wants next
                self._feed(execution, Tick(), now_ms)
                self._sync_timer(execution)
        else:
            self._order_timer(kind, ClientOrderId(ident), now_ms)
        return self._take()

    def on_price(self, bid: Decimal | None, ask: Decimal | None, now_ms: int) -> list[Command]:
        """The latest best bid/ask; a volatility spike lets the plans cut resting limits short."""
        self._out = []
        self.book = Book(bid, ask, now_ms)
        mid = self.book.mid
        if mid is not None:
            self._volatility.observe(now_ms, mid)
        volatile = self._volatility.triggered(now_ms)
        for execution in self.active():
            self._feed(execution, PriceUpdate(self.book, volatile), now_ms)
        return self._take()

    def cancel(self, request_id: RequestId, now_ms: int) -> list[Command]:
        """The caller cancels a request: cancel what rests, and do not fall back."""
        return self.cancel_request(request_id, now_ms)[0]

    def cancel_request(
        self, request_id: RequestId, now_ms: int, reason: str = _BY_CALLER
    ) -> tuple[list[Command], CancelOutcome | None]:
        """`cancel`, and what it did for its caller (`Engine.cancel_order`); None when this book does not hold the
        request (it never did, or it finished and left memory: the database knows which). `reason`: who canceled
        it (the trade's note, and the request's stored cancel: a restart resumes no fallback for it)."""
        self._out = []
        execution = self._execs.get(request_id)
        if execution is None:
            loose = self._cancel_loose(request_id, now_ms, reason)  # before `_take`: its cancels are in the commands
            return self._take(), loose
        if execution.stage in (Stage.DONE, Stage.SETTLING):
            return self._take(), cancel_answer(execution, [], [], ended_now=False)
        if execution.stage is Stage.QUEUED:
            self._queued.remove(request_id)
            self._execs.pop(request_id)
            self._by_key.pop(execution.request.idempotency_key, None)
            said = "canceled" if reason == _BY_CALLER else reason
            refusal = Refusal(RefusalReason.CANCELED, f"{said} before it started; nothing was sent")
            self._withdrawn.add(execution.request, refusal)
            self._refuse(execution, refusal)
            return self._take(), cancel_answer(execution, [], [], ended_now=True)
        mark = len(self._out)
        self._feed(execution, Abort(reason), now_ms)
        if execution.plan is not None and execution.canceled is None:
            # The cancel is stored with the request before it leaves (`CancelAhead`); a leg not yet acknowledged
            # is canceled at its ack, by when this record, told now, has long been committed.
            record = RequestRecord.of(execution.request, execution.plan.reference_price, self.settings.exchange)
            record = execution.canceled = record.model_copy(update={"canceled": reason})
            for i, command in enumerate(self._out[mark:], mark):
                if isinstance(command, Send) and command.request.op is Op.CANCEL_ORDER:
                    self._out[i] = CancelAhead(record, command.request)
                    break
            else:
                self._out.append(Persist(record))
        commands = self._take()
        legs = [self._legs[c] for c in execution.legs if c in self._legs]
        return commands, cancel_answer(execution, legs, commands, ended_now=True)

    def _cancel_loose(self, request_id: RequestId, now_ms: int, reason: str) -> CancelOutcome | None:
        """The open orders of a request no longer executing — restored after it was summed up, or adopted or external
        (`adopted-<cid>`, `external-<cid>`): tracked to their end, they would rest (and block the other side of the
        pair under "parallel") until filled. Canceled when the caller names the request; None when there are none."""
        legs = [leg for leg in self._legs.values() if leg.request_id == request_id and not leg.terminal]
        for leg in legs:
            self._cancel_leg(leg, f"{reason} (its request is over; the order was still open)", now_ms)
        return loose_cancel_answer(self.pair, request_id, legs, self._out) if legs else None

    # ---- the shutdown's cancel (on_shutdown = cancel) -----------------------------------------------
    def shutdown_requests(self) -> list[RequestId]:
        """The requests the shutdown cancels, the queued ones first: withdrawn before the end of a working one could
        start them (only to be refused, uncounted, as the engine stops)."""
        active = self.active()
        queued = [e for e in active if e.stage is Stage.QUEUED]
        ids = [e.request.request_id for e in queued + [e for e in active if e.stage is not Stage.QUEUED]]
        # Then the engine's own open orders whose request is over (restored, adopted): not left resting unnoticed.
        loose = {leg.request_id for leg in self.open_legs() if leg.request_id not in self._execs
                 and leg.role is not OrderRole.EXTERNAL}  # fmt: skip
        return ids + sorted(loose)

    def cancel_at_shutdown(self, request_id: RequestId, now_ms: int) -> list[Command]:
        """The shutdown cancels a request (`on_shutdown = cancel`): as the caller's cancel (no fallback, and none
        after a restart either), but stored and noted as the shutdown's; what it asked of the exchange is kept for
        `shutdown_tally` (asking is not doing: the answers decide)."""
        commands, outcome = self.cancel_request(request_id, now_ms, SHUTDOWN_CANCEL)
        if outcome is not None:
            if outcome.status is CancelStatus.WITHDRAWN:
                self._shutdown.withdrawn += 1
            for cid in (*outcome.client_order_ids, *outcome.at_ack):
                leg = self._legs.get(cid)
                if leg is not None:
                    self._shutdown.legs[cid] = leg
        return commands

    def _create_withdrawn(self, leg: Leg) -> None:
        if leg.cid not in self._shutdown.legs:  # one the shutdown's cancel holds is counted by its tally
            self._shutdown.withdrawn += 1

    def shutdown_tally(self) -> ShutdownTally:
        """The pair's orders as the shutdown leaves them: those it canceled by how they ended, the open ones, and
        the requests it withdrew; each order once (`ShutdownTally`)."""
        return self._shutdown.tally(self.open_legs())

    # ---- the end of a request -----------------------------------------------------------------------
    def _start_next(self, now_ms: int) -> None:
        while self._queued and not any(e.stage in (Stage.WORKING, Stage.SETTLING) for e in self._execs.values()):
            execution = self._execs[self._queued.popleft()]
            # Checked again, with the facts of now: the engine may have halted, the kill switch come on, the
            # wallet or the price moved while it waited. A refused one is answered and the next one tried.
            refusal = self._intake_refusal(execution.request, self.intake())
            if refusal is None:
                self._try_start(execution, now_ms)
                return
            self.discard(execution.request.request_id)
            self._refuse(execution, refusal)
