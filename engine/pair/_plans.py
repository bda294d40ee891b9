"""The pair book's plan half: between one request's `ExecutionPlan` and its orders. Pure.

`PairBook` (`_book`) derives from it and keeps the requests (intake, idempotency keys, queueing). Here, order
facts (the `OrderDesk` hooks) become plan events, plan commands become order commands (`PlaceOrder` → a leg
written ahead and sent, `CancelOrder` → a cancel, `next_deadline_ms` → a timer), and a reported result ends
the request: the summary waits (SETTLING) for fills still being fetched, then the `Trade` is stored, the
caller answered if it was not yet, and the DONE event emitted.
"""

from __future__ import annotations

from abc import abstractmethod

from loguru import logger

from engine.api import Accepted, EngineEvent, EventKind, Refusal, RefusalReason
from engine.domain import (
    ClientOrderId,
    OrderRole,
    OrderStatus,
    OrderType,
    RequestRecord,
    TimeInForce,
    Trade,
    TradeStatus,
    plain_decimal,
)
from engine.exchange import ExchangeError, FilterRejected
from engine.execution import (
    Abort,
    CancelFailed,
    CancelOrder,
    ExecutionCommand,
    ExecutionEvent,
    ExecutionResult,
    LegAcked,
    LegAmended,
    LegClosed,
    LegFailed,
    LegFilled,
    LegNotCreated,
    OrderSpec,
    PlaceOrder,
    ReportResult,
    ResultReason,
)
from engine.orders import CreateRejected, FillEvent, OrderState
from engine.pair._commands import Alert, Emit, Persist, Resolve, Schedule, Unschedule
from engine.pair._legs import Execution, Leg, Stage, ms_to_dt, order_of, plan_key, trade_of
from engine.pair._orders import MAX_FILL_FETCHES
from engine.pair._outcomes import refusal_of
from engine.pair._records import filled_of
from engine.pair._recover import RecoveringBook

__all__ = ["PlanBook"]

_AFTER_ACK = frozenset({EventKind.FILL, EventKind.CANCELED})
"""Events of an order a listener must hear after its `accepted`."""


class PlanBook(RecoveringBook):
    """`RecoveringBook` plus the plan ↔ orders bridge; `PairBook` derives from it (see module docstring)."""

    # ---- plan ↔ orders ------------------------------------------------------------------------------
    def _feed(self, execution: Execution, event: ExecutionEvent, now_ms: int) -> None:
        if execution.plan is not None and execution.stage is Stage.WORKING:
            self._carry(execution, execution.plan.handle(event, now_ms), now_ms)

    def _carry(self, execution: Execution, commands: list[ExecutionCommand], now_ms: int) -> None:
        for command in commands:
            if isinstance(command, PlaceOrder):
                self._place_leg(execution, command.spec, now_ms)
            elif isinstance(command, CancelOrder):
                leg = self._legs.get(command.client_order_id)
                if leg is not None:
                    if command.reason not in execution.story:
                        execution.story.append(command.reason)
                    self._cancel_leg(leg, command.reason, now_ms)
            elif isinstance(command, ReportResult):
                self._report(execution, command.result, now_ms)
        self._sync_timer(execution)

    def _sync_timer(self, execution: Execution) -> None:
        plan = execution.plan
        due = plan.next_deadline_ms if plan is not None and execution.stage is Stage.WORKING else None
        if due == execution.deadline_ms:
            return
        execution.deadline_ms = due
        key = plan_key(execution.request.request_id)
        self._out.append(Unschedule(key) if due is None else Schedule(key, due))

    def _place_leg(self, execution: Execution, spec: OrderSpec, now_ms: int) -> None:
        existing = self._legs.get(spec.client_order_id)
        if existing is not None:
            # The plan re-places an order that was never created: the same id goes again (no duplicate).
            self._send_create(existing, now_ms)
            return
        leg = Leg(
            state=OrderState.new(spec.client_order_id, spec.symbol, spec.side, spec.quantity),
            request_id=execution.request.request_id,
            pair=self.pair,
            role=spec.role,
            order_type=spec.order_type,
            time_in_force=spec.time_in_force or TimeInForce.GTC,
            price=spec.price,
            priority=spec.priority,
            created_ms=now_ms,
            updated_ms=now_ms,
            exchange=self.settings.exchange,
            parent=spec.parent_client_order_id,
            slippage_capped=spec.slippage_capped,
        )
        self._legs[leg.cid] = leg
        execution.legs.append(leg.cid)
        self._write_ahead_and_send(leg, now_ms)
        if spec.role is OrderRole.FALLBACK and not self.tracking_only:  # tracking only: refused, never sent
            price = plain_decimal(spec.price) if spec.price is not None else ""
            what = "market" if spec.order_type is OrderType.MARKET else f"IOC limit at {price}"
            what += ", capped by the slippage guard" if spec.slippage_capped else ""
            # A market request's order sent again after retry-later has the fallback's role (its own client order
            # id, counted as an attempt) but is no fallback: its author asked for this very order.
            market = execution.request.order_type is OrderType.MARKET
            execution.story.append(f"sent again as a new order ({what})" if market else f"fallback {what}")
            self._emit(EventKind.FALLBACK, leg, now_ms, "; ".join(execution.story))

    # ---- order facts → plan events (OrderDesk hooks) ------------------------------------------------
    def _leg_acked(self, leg: Leg, now_ms: int) -> None:
        execution = self._execs.get(leg.request_id)
        if execution is None:
            return  # a tracked order of no request in memory (restored orphan, external)
        if not execution.resolved:
            # The first order of the request the exchange accepts answers the caller — a fallback too, when the
            # primary never existed (rejected by PERCENT_PRICE, never created): the request IS executing, and a
            # caller told "rejected" might send it again.
            execution.resolved = True
            self._out.append(Resolve(execution.request.request_id, Accepted(order_of(leg))))
        self._answer_replays(execution)
        # `fallback` was said when the fallback order was sent: its ack is an `accepted` (its order's role tells).
        self._emit(EventKind.ACCEPTED, leg, now_ms, _accepted_words(leg, execution))
        self._accepted_first(leg.cid)
        self._feed(execution, LegAcked(leg.cid), now_ms)

    def _accepted_first(self, cid: ClientOrderId) -> None:
        # An ack that carries fills (a market order's FULL response, or a report that beat the ack) has them
        # applied first: listeners would hear `fill` (even `canceled`) before `accepted`. The order they were told
        # in is moved, within this message's output; the event's order snapshot is the latest either way.
        out = self._out
        for i in range(len(out) - 1):
            command = out[i]
            if isinstance(command, Emit) and command.event.kind in _AFTER_ACK and command.event.client_order_id == cid:
                out.insert(i, out.pop())
                return

    def _leg_filled(self, leg: Leg, fill: FillEvent, now_ms: int) -> None:
        execution = self._execs.get(leg.request_id)
        if execution is not None:
            event = LegFilled(leg.cid, fill.trade_id, fill.quantity, fill.price, fill.commission,
                              fill.commission_asset)  # fmt: skip
            self._feed(execution, event, now_ms)
        elif leg.summed_trade is not None:
            self._late_fill(leg, leg.summed_trade, fill, now_ms)  # its request was summed up already

    def _leg_failed(self, leg: Leg, error: ExchangeError, now_ms: int) -> None:
        execution = self._execs.get(leg.request_id)
        if execution is None:
            return
        if isinstance(error, FilterRejected) and error.is_percent_price:
            execution.story.append(f"{leg.role.value} rejected by {error.filter_name}")
        self._feed(execution, LegFailed(leg.cid, error), now_ms)
        record = self._retry_record(execution)
        if record is not None and record.fallback_retry == leg.cid:
            # The plan waits to send the remainder again: stored with the request, in this message's records with the
            # order's rejected row, so that a restart resumes the wait rather than take the row for a rejection.
            self._out.append(Persist(record))

    def _retry_record(self, execution: Execution) -> RequestRecord | None:
        """The request as stored while its plan waits to re-send the fallback (FALLBACK_WAIT), naming the order
        whose create failed with retry-later and when the remainder goes again; None when it does not wait."""
        plan = execution.plan
        retry = plan.fallback_retry if plan is not None and execution.stage is Stage.WORKING else None
        if plan is None or retry is None:
            return None
        record = RequestRecord.of(execution.request, plan.reference_price, self.settings.exchange)
        return record.model_copy(update={"fallback_retry": retry[0], "fallback_retry_at": ms_to_dt(retry[1])})

    def _leg_not_created(self, leg: Leg, now_ms: int) -> None:
        execution = self._execs.get(leg.request_id)
        if execution is not None:
            self._feed(execution, LegNotCreated(leg.cid), now_ms)
        if execution is None or leg.state.status is OrderStatus.PENDING_SUBMIT:
            # The plan moved on without it (it was being canceled): close the never-created order. The
            # plan already counts it as closed with nothing filled, so it hears nothing more of it.
            leg.told_closed = True
            self._apply(leg, CreateRejected("never created; not re-sent"), now_ms)

    def _leg_unresolved(self, leg: Leg, now_ms: int) -> None:
        execution = self._execs.get(leg.request_id)
        if execution is None:
            return
        if not execution.resolved:
            # A fallback too: when the primary was never accepted (rejected by PERCENT_PRICE), the fallback is
            # the caller's only answer, and a caller never answered waits forever.
            execution.resolved = True
            refusal = Refusal(
                RefusalReason.OUTCOME_UNKNOWN,
                "the exchange never confirmed the order; it may exist and will be reconciled",
                {"client_order_id": leg.cid},
            )
            self._out.append(Resolve(execution.request.request_id, refusal))

    def _leg_amended(self, leg: Leg, now_ms: int) -> None:
        execution = self._execs.get(leg.request_id)
        if execution is not None:
            self._feed(execution, LegAmended(leg.cid), now_ms)

    def _leg_vanished(self, leg: Leg, why: str, now_ms: int) -> None:
        execution = self._execs.get(leg.request_id)
        if execution is not None:
            self._feed(execution, Abort(why), now_ms)

    def _cancel_failed(self, leg: Leg, error: ExchangeError, now_ms: int) -> None:
        execution = self._execs.get(leg.request_id)
        if execution is not None:
            self._feed(execution, CancelFailed(leg.cid, error), now_ms)

    def _leg_changed(self, leg: Leg, now_ms: int) -> None:
        execution = self._execs.get(leg.request_id)
        if execution is None:
            return
        if leg.terminal and not leg.told_closed:
            leg.told_closed = True
            state = leg.state
            # The exchange's cumulative quantity, not the fills known here: never re-buy what executed.
            cum_quote = max(state.quote_filled, state.exchange_cum_quote)
            closed = LegClosed(leg.cid, state.status, state.amount - state.remaining, cum_quote, leg.prevented)
            self._feed(execution, closed, now_ms)
        if execution.stage is Stage.SETTLING and not self._awaiting_fills(execution):
            self._close(execution, now_ms)

    # ---- the end of a request -----------------------------------------------------------------------
    @abstractmethod
    def _answer_replays(self, execution: Execution) -> None:
        """Answer the duplicates (the same key) that waited for `execution`'s first ack or its end."""

    @abstractmethod
    def _start_next(self, now_ms: int) -> None:
        """Start the next queued request once the pair is free (the request level)."""

    def _report(self, execution: Execution, result: ExecutionResult, now_ms: int) -> None:
        execution.result = result
        execution.stage = Stage.SETTLING
        # refused by the guard, or its last order capped at the bound (`capped_detail` gave the numbers) fell short
        incomplete = result.reason in (ResultReason.FALLBACK_INCOMPLETE, ResultReason.MARKET_INCOMPLETE)
        if result.reason is ResultReason.SLIPPAGE_REFUSED or (incomplete and "bound" in result.details):
            self._out.append(Alert("slippage_guard", result.detail))
        elif result.reason is ResultReason.CANCELED_EXTERNALLY and not result.detail.startswith("limit order amended"):
            # (an amended order that then ended, by its fill or the engine's own cancel: `external_amend` told it)
            self._out.append(Alert("external_cancel", result.detail, execution.legs[0] if execution.legs else None))
        if not self._awaiting_fills(execution):
            self._close(execution, now_ms)

    def _awaiting_fills(self, execution: Execution) -> bool:
        # The trade is summed from fills: wait for those the exchange counted (myTrades is on its way), and for
        # the exchange's word on orders restored after a restart (it may have executed more than was stored).
        legs = (self._legs[c] for c in execution.legs)
        return any(
            leg.resync_left > 0 or (leg.state.missing_qty > 0 and leg.fill_fetches < MAX_FILL_FETCHES) for leg in legs
        )

    def _close(self, execution: Execution, now_ms: int) -> None:
        result = execution.result
        assert result is not None  # only a reported execution settles
        execution.stage = Stage.DONE
        request_id = execution.request.request_id
        legs = [self._legs[c] for c in execution.legs]
        trade = trade_of(execution, result, legs, now_ms, self.rules.floor_qty)
        self._out.append(Persist(trade))
        if trade.filled > trade.requested:  # never by design: said loudly, the record keeps what executed
            over = f"filled {plain_decimal(trade.filled)}, more than the {plain_decimal(trade.requested)} requested"
            logger.bind(pair=self.pair, request_id=request_id).error("request {}: {}", request_id, over)
            self._out.append(Alert("anomaly", f"request {request_id}: {over}", legs[0].cid if legs else None))
        if not execution.resolved:
            execution.resolved = True
            self._out.append(Resolve(request_id, refusal_of(result, legs[0].cid if legs else None)))
        done = EngineEvent(EventKind.DONE, self.pair, ms_to_dt(now_ms), request_id=request_id, trade=trade,
                           message=trade.note)  # fmt: skip
        self._out.append(Emit(done))
        self._answer_replays(execution)
        # With the primary's client order id bound and every leg's named: grepping any of them finds the end.
        cids = [leg.cid for leg in legs]
        logger.bind(pair=self.pair, request_id=request_id, client_order_id=cids[0] if cids else None).info(
            "request done: {} ({}); orders: {}", _done_words(trade), trade.note or "-", ", ".join(cids) or "none"
        )
        self._start_next(now_ms)


def _accepted_words(leg: Leg, execution: Execution) -> str:
    """The `accepted` event's message: nothing for the request's own order (its role says it); the fallback, or a
    market request's order sent again (which has the fallback's role but is no fallback), says which it is."""
    if leg.role is OrderRole.PRIMARY:
        return ""
    return (
        "order sent again accepted" if execution.request.order_type is OrderType.MARKET else "fallback order accepted"
    )


def _done_words(trade: Trade) -> str:
    """The end of a request for the log: "filled 0.01 of 0.01", "partial, filled 0.004 of 0.01", "canceled, nothing
    filled of 0.001" (not "canceled 0 of 0.001")."""
    filled = filled_of(trade.filled, trade.requested)
    return filled if trade.status is TradeStatus.FILLED else f"{trade.status.value}, {filled}"
