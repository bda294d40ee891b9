"""The order desk: the order-level half of the pair book. Pure.

It owns the legs (one `OrderState` per exchange order) and everything that happens to a single order: the
create and its write-ahead, unknown create outcomes (`UnknownOutcomeResolver`: looked up, never resent
blindly), re-sending a create that certainly did not execute, cancels, status lookups, fetching fills the
exchange counted but did not send (myTrades), and the records and events of each change. What the request
does next is not decided here: every fact goes up through the `_leg_*` hooks, which `PairBook` turns into
events for its `ExecutionPlan`.

The legs, the hooks, sending and applying order events are its core, `OrderCore` (`_order_core`); this module
handles what comes back: gateway results, execution reports and order timers.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

from loguru import logger

from engine.domain import ClientOrderId, OrderStatus, plain_decimal
from engine.exchange import (
    DuplicateOrder,
    ExchangeError,
    ExchangeOrderStatus,
    ExecutionReport,
    OrderNotFound,
    OutcomeUnknown,
    Resolution,
    RetryLater,
    StopTrading,
    UnknownOutcomeResolver,
)
from engine.gateway import GatewayResult, Op
from engine.orders import (
    Acked,
    CancelRejected,
    ExchangeStatus,
    FillEvent,
    NotCreated,
    OrderEvent,
    SubmitOutcomeUnknown,
    events_from_report,
    fill_from_my_trade,
    status_from_rest_order,
)
from engine.pair._commands import Alert, Command, Persist, Schedule, Send
from engine.pair._legs import Leg
from engine.pair._order_core import OrderCore
from engine.pair._params import MY_TRADES_PAGE, fetch_request, trades_request
from engine.pair._records import error_record
from engine.venue import CANCELED_BEFORE_SENT, WITHDRAWN_AT_STOP, WireFormatError, parse_order

__all__ = ["MAX_FILL_FETCHES", "RESYNC_LOOKUPS", "OrderDesk", "fill_refetch_ms"]

MAX_FILL_FETCHES = 14
"""myTrades attempts per order before the missing fills are alerted instead of awaited: spaced by
`fill_refetch_ms`, they span about 2.5 minutes, far past the 10-20 s REST can lag the matching engine."""
RESYNC_LOOKUPS = 10
"""Status lookups of an order restored after a restart before its request goes on without the exchange's word."""
_FILL_REFETCH_MS = 1_000
_FILL_REFETCH_CAP_MS = 30_000
_LOOKUPS_BEFORE_VANISHED = 3
_VANISHED_AFTER_MS = 60_000
"""How long REST must not know an acknowledged order before it is closed as vanished."""
_MISSED_LOOKUP_MAX_MS = 10_000


def fill_refetch_ms(fetches: int) -> int:
    """The wait before the next myTrades attempt after `fetches` of them found fills missing: 1, 1, 2, 2, 4, 4,
    8, 8, 16, 16, 30, 30, … s. Quick while REST usually catches up; then patient, as a lag of tens of seconds
    is common (field-lessons) and a fill given up on is a fill never stored."""
    return min(_FILL_REFETCH_CAP_MS, _FILL_REFETCH_MS * 2 ** (max(0, fetches - 1) // 2))


class OrderDesk(OrderCore):
    """Order-level state and handlers (see module docstring); `PairBook` adds the request level."""

    # ---- gateway results -----------------------------------------------------------------------------
    def on_result(self, result: GatewayResult, now_ms: int) -> list[Command]:
        """A gateway call this book asked for has finished."""
        self._out = []
        leg = self._legs.get(ClientOrderId(result.request.key))
        if leg is None:
            logger.bind(pair=self.pair, client_order_id=result.request.key).warning("result for unknown order")
            return self._take()
        op = result.request.op
        try:
            if op is Op.CREATE_ORDER:
                self._on_create(leg, result, now_ms)
            elif op is Op.CANCEL_ORDER:
                self._on_cancel(leg, result, now_ms)
            elif op is Op.FETCH_ORDER:
                self._on_fetch(leg, result, now_ms)
            elif op is Op.MY_TRADES:
                self._on_trades(leg, result, now_ms)
        except (WireFormatError, ValueError, KeyError) as exc:
            # Every answer is read whole before any of it is applied: an unreadable one changed nothing, and is taken
            # as a failed call of its kind, so that what follows a failure follows it too (a create's outcome looked
            # up, a lookup or a fills fetch asked again). An error of the engine's own still crashes the actor.
            self._unreadable(leg, result, exc, now_ms)
        self._leg_changed(leg, now_ms)
        return self._take()

    def _unreadable(self, leg: Leg, result: GatewayResult, exc: Exception, now_ms: int) -> None:
        op = result.request.op
        why = f"{op.value} response unreadable: {type(exc).__name__}: {exc}"
        if op is Op.CREATE_ORDER:
            self._error(f"{op.value} response unreadable", leg.cid, f"{type(exc).__name__}: {exc}", now_ms)
            if not leg.acked and leg.state.status is OrderStatus.SUBMITTED and leg.resolver is None:
                # The exchange answered: it has the order. Looked up until seen, never taken for "not created".
                self._unknown_outcome(leg, now_ms, exists=True)
            return
        failed = GatewayResult(result.request, error=OutcomeUnknown(why, operation=op.value))
        if op is Op.CANCEL_ORDER:
            self._on_cancel(leg, failed, now_ms)
        elif op is Op.FETCH_ORDER:
            self._on_fetch(leg, failed, now_ms)
        elif op is Op.MY_TRADES:
            self._on_trades(leg, failed, now_ms)

    def _unknown_outcome(self, leg: Leg, now_ms: int, *, exists: bool) -> None:
        """The create's outcome is unknown: looked up (`UnknownOutcomeResolver`), never re-sent blindly."""
        self._apply(leg, SubmitOutcomeUnknown(), now_ms)
        leg.resolver = UnknownOutcomeResolver(
            leg.cid,
            submitted_ms=now_ms,
            grace_ms=self.settings.unknown_outcome_grace_ms,
            first_lookup_ms=now_ms if exists else None,
            exists=exists,
        )
        self._poll_resolver(leg, now_ms)

    def _on_create(self, leg: Leg, result: GatewayResult, now_ms: int) -> None:
        error = result.error
        if error is None:
            self._apply_snapshot(leg, result.data, now_ms)
            self._acked(leg, now_ms)
            return
        if (
            isinstance(error, RetryLater)
            and leg.resends < self.settings.max_create_resends
            and not leg.acked
            and (leg.state.status is OrderStatus.SUBMITTED)
        ):
            # Stored, but no ERROR event: nothing went wrong with the request (it goes out again under the same id
            # once the gateway allows), and a listener told "error" then "accepted" cannot tell which one holds.
            self._out.append(Persist(error_record(error, self.pair, leg.cid, now_ms)))
            logger.bind(pair=self.pair, client_order_id=leg.cid).warning(
                "create not executed ({}: {}); sent again under the same id unless its request is canceled",
                type(error).__name__,
                error,
            )
        elif str(error) == CANCELED_BEFORE_SENT:  # the caller's cancel withdrew it: nothing went wrong, no `error`
            logger.bind(pair=self.pair, client_order_id=leg.cid).info("create withdrawn before it left: {}", error)
        else:
            self._record(error, leg.cid, now_ms)
        if leg.acked or leg.state.status is not OrderStatus.SUBMITTED:
            # A stale answer: the order was seen meanwhile (the stream's report beat this response) or has closed.
            # The error says nothing new about it; acting on it (lookups that may conclude "not created", a
            # re-send, a rejection) could orphan or duplicate a live order. Recorded, nothing more.
            logger.bind(pair=self.pair, client_order_id=leg.cid).warning(
                "create answered {} after the order was {}: ignored", type(error).__name__, leg.state.status.value
            )
            return
        if isinstance(error, OutcomeUnknown | DuplicateOrder):
            # Unknown: looked up, never re-sent blindly. A duplicate id (-2010) says the order exists (an
            # earlier send of this id reached the exchange): looked up until seen, never "not created".
            self._unknown_outcome(leg, now_ms, exists=isinstance(error, DuplicateOrder))
        elif str(error) == CANCELED_BEFORE_SENT or (
            isinstance(error, RetryLater) and leg.resends < self.settings.max_create_resends
        ):
            # Nothing was executed (429, clock skew; or withdrawn unsent at the caller's cancel): the plan decides what
            # follows — the same order under the same client order id (the gateway holds it until Retry-After), or,
            # when it is being canceled meanwhile, nothing: a canceled request must not execute after all.
            leg.resends += 1
            self._apply(leg, NotCreated(), now_ms)
            self._leg_not_created(leg, now_ms)
        else:
            if str(error) == WITHDRAWN_AT_STOP:
                self._create_withdrawn(leg)
            self._fail(leg, error, now_ms)

    def _apply_snapshot(self, leg: Leg, data: object, now_ms: int, *, cancel: bool = False) -> None:
        if not isinstance(data, dict):
            raise WireFormatError("order response is not an object")
        snap = parse_order(data, client_order_id_key="origClientOrderId" if cancel else "clientOrderId")
        status = status_from_rest_order(data)  # read whole before any of it is applied
        if not cancel:
            self._apply(leg, Acked(snap.order_id), now_ms)
        time_ms = int(snap.time.timestamp() * 1000)
        for f in snap.fills:
            # Fills in the create response matched on arrival: the new order was the taker.
            event = FillEvent(
                f.trade_id,
                f.quantity,
                f.price,
                f.price * f.quantity,
                f.commission,
                f.commission_asset,
                False,
                time_ms,
                snap.order_id,
            )
            self._apply(leg, event, now_ms)
        self._apply(leg, status, now_ms)

    def _on_cancel(self, leg: Leg, result: GatewayResult, now_ms: int) -> None:
        error = result.error
        if error is None:
            # An amend missed until now: the plan hears it first. A cancel's answer names the order by
            # `origClientOrderId`; its `clientOrderId` is the cancel request's own (Binance makes one up).
            _readable(result.data, cancel=True)  # read whole first: a garbled quantity is no amend
            self._seen_quantity(leg, result.data, now_ms, id_field="origClientOrderId")
            self._apply_snapshot(leg, result.data, now_ms, cancel=True)
            return
        if isinstance(error, OrderNotFound):
            # -2011: the order had filled or been canceled already, a race and no fault: stored, and its status
            # looked up (below), but no `error` event (listeners heard one for a cancel that came too late).
            logger.bind(pair=self.pair, client_order_id=leg.cid).info("cancel answered {}: looking the order up", error)
            self._out.append(Persist(error_record(error, self.pair, leg.cid, now_ms)))
        else:
            self._record(error, leg.cid, now_ms)
        if isinstance(error, StopTrading):
            # The operator must know which order stays live (the plan retries the cancel, growing the wait).
            self._out.append(Alert("stop_trading", f"cancel refused, the order stays open: {error}", leg.cid))
        # -2011 "Unknown order sent.": already filled or canceled — the state machine asks for its status.
        self._apply(leg, CancelRejected(str(error), order_gone=isinstance(error, OrderNotFound)), now_ms)
        self._cancel_failed(leg, error, now_ms)

    def _on_fetch(self, leg: Leg, result: GatewayResult, now_ms: int) -> None:
        error = result.error
        if error is None:
            _readable(result.data)  # before anything changes: an unreadable answer is a failed lookup
        resolver = leg.resolver
        leg.lookup_pending = False
        if leg.resync_left:
            # A restored order's lookup: its request waits for the exchange's word, asked again while the
            # lookup fails (a "not found" is a word too: `_not_found` takes it from here).
            leg.resync_left = 0 if error is None or isinstance(error, OrderNotFound) else leg.resync_left - 1
            if leg.resync_left:
                self._out.append(Schedule(f"resync:{leg.cid}", now_ms + _FILL_REFETCH_MS))
        if error is None:
            self._on_found(leg, result.data, now_ms)
            return
        if resolver is None:
            numbered = leg.state.exchange_order_id is not None
            if isinstance(error, OrderNotFound) and leg.terminal and numbered and not leg.by_order_id:
                # A closed order (its fills still to fetch) not found by our client id, though the exchange numbered
                # it: it may know it by another id now (an amend outside the engine, perhaps while the engine was
                # down): asked again by its order id. A live one is (`_not_found`).
                leg.by_order_id, leg.lookup_pending = True, True
                self._out.append(Send(fetch_request(self.symbol, self.pair, leg.cid, leg.order_ref)))
                return
            if isinstance(error, OrderNotFound) and leg.acked and not leg.terminal:
                # Not an error yet: REST may lag, and these lookups are how the engine finds out. The
                # conclusion, if it comes, is told once (`order_vanished`, the trade's note).
                logger.bind(pair=self.pair, client_order_id=leg.cid).info(
                    "status lookup: the exchange does not know the order (yet); miss {}", leg.missed_lookups + 1
                )
                self._not_found(leg, now_ms)
                return
            self._record(error, leg.cid, now_ms)
            return
        # Once the lookups gave up, the caller was told the outcome is unknown and reconciliation asks: the
        # order is never re-sent then (the caller may have placed it again), only closed as never created.
        gave_up = resolver.state is Resolution.GAVE_UP
        state = (
            resolver.on_lookup_not_found(now_ms)
            if isinstance(error, OrderNotFound)
            else resolver.on_lookup_failed(error, now_ms)
        )
        if state is Resolution.NOT_CREATED:
            leg.resolver = None
            self._apply(leg, NotCreated(), now_ms)
            if gave_up:
                self._fail(leg, ExchangeError("not found by reconciliation after its lookups gave up; not re-sent",
                                              operation="create_order"), now_ms)  # fmt: skip
            elif leg.resends < self.settings.max_create_resends:
                leg.resends += 1
                self._leg_not_created(leg, now_ms)
            else:
                self._fail(leg, ExchangeError("never created after repeated attempts", operation="create_order"),
                           now_ms)  # fmt: skip
        elif state is Resolution.GAVE_UP and not gave_up:
            self._out.append(Alert("outcome_unknown", "order outcome still unknown after every lookup", leg.cid))
            self._leg_unresolved(leg, now_ms)
        else:
            self._poll_resolver(leg, now_ms)

    def _on_found(self, leg: Leg, data: object, now_ms: int) -> None:
        """The exchange's snapshot of `leg` (a lookup's answer, or its open-orders row): REST knows it."""
        self._apply_snapshot(leg, data, now_ms)  # first: an unreadable one is no word from the exchange
        self._seen_quantity(leg, data, now_ms)
        leg.resync_left, leg.resync_by_scan = 0, False  # a restored order has the exchange's word
        leg.missed_lookups, leg.first_miss_ms = 0, None  # found: REST knows it (a miss later counts anew)
        self._acked(leg, now_ms)

    def _seen_quantity(self, leg: Leg, data: object, now_ms: int, id_field: str = "clientOrderId") -> None:
        # The order's quantity and client id at the exchange (a lookup, a scan row, a cancel's answer): an amend
        # outside the engine shows here too (`_amended`), its REPLACED report missed or a restart ago.
        if isinstance(data, dict) and data.get("origQty") is not None:
            exchange_cid = str(data.get(id_field) or leg.cid) if leg.by_order_id else leg.cid
            with contextlib.suppress(ArithmeticError, ValueError):
                self._amended(leg, exchange_cid, Decimal(str(data["origQty"])), now_ms)

    def _create_withdrawn(self, leg: Leg) -> None:
        """The gateway withdrew `leg`'s create as the engine began to stop (never sent): `PairBook` counts it."""

    def _not_found(self, leg: Leg, now_ms: int) -> None:
        # An order the exchange acknowledged is not found (a database from another account or a reset test
        # exchange): once REST has not known it for a minute (`_VANISHED_AFTER_MS`, well past the 10-20 s REST can
        # lag the matching engine) over at least three looks, and it is older than the grace period, it is closed
        # here as EXPIRED with what was known to execute, its request ends without a fallback, and the operator is
        # told. Nothing is traded on a guess. A lookup that finds it starts the count again (`_on_fetch`).
        # Not found by our client id: the next looks go by the exchange's order id (an amend outside the engine gives
        # the order another client id; it is still there).
        leg.by_order_id = leg.by_order_id or leg.state.exchange_order_id is not None
        if leg.first_miss_ms is None or now_ms - leg.last_miss_ms > 2 * _MISSED_LOOKUP_MAX_MS:
            # A first miss, or one long after a chain of looks that ended (a failed lookup schedules none): anew.
            leg.first_miss_ms, leg.missed_lookups = now_ms, 0
        leg.last_miss_ms = now_ms
        leg.missed_lookups += 1
        young = now_ms - leg.created_ms < self.settings.unknown_outcome_grace_ms
        unseen_ms = now_ms - leg.first_miss_ms
        if young or unseen_ms < _VANISHED_AFTER_MS or leg.missed_lookups < _LOOKUPS_BEFORE_VANISHED:
            delay = min(_FILL_REFETCH_MS << min(leg.missed_lookups - 1, 4), _MISSED_LOOKUP_MAX_MS)
            self._out.append(Schedule(f"status:{leg.cid}", now_ms + delay))
            return
        state = leg.state
        self._apply(leg, ExchangeStatus(ExchangeOrderStatus.EXPIRED, state.exchange_cum_qty, state.exchange_cum_quote,
                                        state.exchange_order_id), now_ms)  # fmt: skip
        message = "the exchange does not know this acknowledged order; closed as expired, no fallback"
        self._out.append(Alert("order_vanished", message, leg.cid))
        self._leg_vanished(leg, message, now_ms)

    def _poll_resolver(self, leg: Leg, now_ms: int) -> None:
        resolver = leg.resolver
        if resolver is None:
            return
        if resolver.poll(now_ms) is not None:
            self._out.append(Send(fetch_request(self.symbol, self.pair, leg.cid, leg.order_ref)))
            return
        due = resolver.next_lookup_ms
        if due is not None:
            self._out.append(Schedule(f"lookup:{leg.cid}", due))

    def _on_trades(self, leg: Leg, result: GatewayResult, now_ms: int) -> None:
        if result.error is not None:
            self._record(result.error, leg.cid, now_ms)
        else:
            rows = result.data if isinstance(result.data, list) else []
            if not all(isinstance(row, dict) for row in rows):
                raise WireFormatError("a myTrades row is not an object")
            # Read whole (every row's fill and id) before any of it is applied.
            for row in rows:
                if not 0 <= _row_int(row, "time") <= _LATEST_MS:
                    raise WireFormatError(f"myTrades time {row.get('time')!r} is out of range")
            fills = [(_row_int(row, "orderId"), fill_from_my_trade(row)) for row in rows]
            last = max((_row_int(row, "id") for row in rows), default=0)
            for order_id_of_row, fill in fills:
                if leg.state.exchange_order_id is None or order_id_of_row == leg.state.exchange_order_id:
                    self._apply(leg, fill, now_ms)
            order_id = leg.state.exchange_order_id
            if len(rows) >= MY_TRADES_PAGE and leg.state.missing_qty > 0 and order_id is not None:
                # A full page: the rest follows it (not a failed fetch, so it does not count).
                self._out.append(Send(trades_request(self.symbol, self.pair, leg.cid, order_id, from_id=last + 1)))
                return
        leg.fill_fetches += 1
        if leg.state.missing_qty <= 0:
            return
        if leg.fill_fetches < MAX_FILL_FETCHES:
            # REST can lag the matching engine (or the call failed): ask again, never invent fills.
            self._out.append(Schedule(f"fills:{leg.cid}", now_ms + fill_refetch_ms(leg.fill_fetches)))
        else:
            self._out.append(
                Alert("fills_missing", f"{plain_decimal(leg.state.missing_qty)} executed but no fills found", leg.cid)
            )

    # ---- reports and order timers --------------------------------------------------------------------
    def on_report_events(self, cid: ClientOrderId, events: tuple[OrderEvent, ...], now_ms: int) -> list[Command]:
        """Events for one of this book's orders (from an execution report or a reconciliation)."""
        self._out = []
        leg = self._legs.get(cid)
        if leg is None:
            return self._take()
        for event in events:
            self._apply(leg, event, now_ms)
        if leg.state.exchange_order_id is not None:
            self._acked(leg, now_ms)  # a report (fill before ack) told us the order exists
        self._leg_changed(leg, now_ms)
        return self._take()

    def on_report(self, report: object, now_ms: int) -> list[Command]:
        """An execution report from the user data stream (`engine.exchange.ExecutionReport`)."""
        if not isinstance(report, ExecutionReport):
            return []
        cid = ClientOrderId(report.orig_client_order_id or report.client_order_id)
        return self.on_report_events(cid, events_from_report(report), now_ms)

    def _order_timer(self, kind: str, cid: ClientOrderId, now_ms: int) -> None:
        leg = self._legs.get(cid)
        if leg is None:
            return
        if kind == "lookup":
            self._poll_resolver(leg, now_ms)
        elif kind == "unacked" and self._ack_overdue(leg) and self.in_gateway(leg.cid):
            # Still in the gateway (behind a full order window, a -1015 hold): its answer will come. Looked up now,
            # it is found nowhere, and "not created" would send a second create under its id.
            self._out.append(Schedule(f"unacked:{leg.cid}", now_ms + self.settings.unknown_outcome_grace_ms))
        elif kind == "unacked" and self._ack_overdue(leg):
            # Its create's answer died with the actor before: the outcome is unknown. A plain lookup that found
            # nothing left it SUBMITTED for good (and the pair refusing new requests); the resolver looks it up until
            # the exchange shows it or, past the grace period, proves it never existed (the plan then re-sends it).
            self._apply(leg, SubmitOutcomeUnknown(), now_ms)
            # From now: the create left the gateway at some time after the intent (a Retry-After, a full order window).
            leg.resolver = UnknownOutcomeResolver(leg.cid, submitted_ms=now_ms,
                                                  grace_ms=self.settings.unknown_outcome_grace_ms,
                                                  first_lookup_ms=now_ms)  # fmt: skip
            self._poll_resolver(leg, now_ms)
        elif (kind == "status" and not leg.terminal) or (kind == "resync" and leg.resync_left):
            leg.resync_by_scan, leg.lookup_pending = False, True  # a scan meanwhile does not ask again
            self._out.append(Send(fetch_request(self.symbol, self.pair, leg.cid, leg.order_ref)))
        elif kind == "fills" and leg.state.missing_qty > 0 and leg.state.exchange_order_id is not None:
            self._out.append(Send(trades_request(self.symbol, self.pair, leg.cid, leg.state.exchange_order_id)))

    @staticmethod
    def _ack_overdue(leg: Leg) -> bool:
        """Sent, not acknowledged, and nothing else (a resolver, a restored order's lookup) asking about it."""
        return (
            leg.state.status is OrderStatus.SUBMITTED and not leg.acked and leg.resolver is None and not leg.resync_left
        )

    def _rearm_order_timers(self, now_ms: int) -> None:
        for leg in self._legs.values():
            if self._ack_overdue(leg):
                # After a restart: its create's answer normally reaches the new actor, but the message that killed
                # the old one may have been it. Past the grace period, still unanswered, the exchange is asked.
                self._out.append(Schedule(f"unacked:{leg.cid}", now_ms + self.settings.unknown_outcome_grace_ms))
            self._poll_resolver(leg, now_ms)
            # Its lookup's answer went to the actor that died; one waiting for a scan waits for the restart round's
            # (always sent), unless the book is tracking-only now (halted: no round follows the halt).
            if leg.resync_left and (not leg.resync_by_scan or self.tracking_only):
                self._out.append(Schedule(f"resync:{leg.cid}", now_ms))
            if leg.state.missing_qty > 0 and leg.fill_fetches < MAX_FILL_FETCHES:
                self._out.append(Schedule(f"fills:{leg.cid}", now_ms))


def _row_int(row: dict[str, object], key: str) -> int:
    value = row.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireFormatError(f"myTrades field {key!r} is not an integer: {value!r}")
    return value


_LATEST_MS = 10**13  # the year 2286: a later time is no time the exchange sends


def _readable(data: object, *, cancel: bool = False) -> None:
    """Raise `WireFormatError` unless `data` reads as a whole order answer (what `_apply_snapshot` applies)."""
    if not isinstance(data, dict):
        raise WireFormatError("order response is not an object")
    parse_order(data, client_order_id_key="origClientOrderId" if cancel else "clientOrderId")
    status_from_rest_order(data)
