"""The pair book: everything about one pair's requests and orders, as pure code.

The pair actor feeds it what happens (a request, a gateway result, an execution report, a timer, a price)
together with the current time, and carries out the commands it returns (`engine.pair._commands`). Nothing
here blocks, sleeps, reads a clock or does I/O, so every scenario — partial fills, races, unknown outcomes —
is testable by calling methods in order.

Order life cycles are delegated to `engine.orders` (transition table, fill accounting) and unknown create
outcomes to `engine.exchange.UnknownOutcomeResolver`; this module decides what to send next.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from loguru import logger

from engine.api import Accepted, EngineEvent, EventKind, Refusal, RefusalReason
from engine.domain import (
    ClientOrderId,
    ErrorRecord,
    Fill,
    OrderRequest,
    OrderRole,
    OrderStatus,
    OrderType,
    Pair,
    Priority,
    RequestId,
    Side,
    TimeInForce,
    pair_to_symbol,
)
from engine.exchange import ExchangeError, FilterRejected, OrderNotFound, OutcomeUnknown, RetryLater, StopTrading
from engine.exchange._client_ids import client_order_id
from engine.exchange._resolver import Resolution, UnknownOutcomeResolver
from engine.execution._guards import Book, VolatilityMonitor, check_slippage
from engine.execution._rules import SymbolRules
from engine.gateway import GatewayResult, Op
from engine.orders import (
    Acked,
    Anomaly,
    CancelRejected,
    CancelRequested,
    CreateRejected,
    FetchMissingFills,
    FetchOrderStatus,
    FillApplied,
    FillEvent,
    NotCreated,
    OrderEffect,
    OrderEvent,
    OrderState,
    StatusChanged,
    SubmitOutcomeUnknown,
    Submitted,
    apply,
    events_from_report,
    fill_from_my_trade,
    status_from_rest_order,
)
from engine.pair._commands import Alert, Command, Emit, Persist, Resolve, Schedule, Send, Unschedule, WriteAhead
from engine.pair._intake import IntakeContext, check_intake
from engine.pair._legs import Execution, Leg, Phase, ms_to_dt, order_of, trade_of
from engine.pair._params import cancel_request, create_request, fetch_request, trades_request
from engine.pair._settings import PairSettings
from engine.venue import WireFormatError, parse_order

__all__ = ["PairBook"]

_MAX_FILL_FETCHES = 10
_FILL_REFETCH_MS = 1_000


class PairBook:
    """Pure state of one pair (see module docstring). Methods return the commands to carry out."""

    def __init__(self, pair: Pair, rules: SymbolRules, settings: PairSettings) -> None:
        self.pair = pair
        self.symbol = pair_to_symbol(pair)
        self.rules = rules
        self.settings = settings
        self.book = Book(None, None, 0)
        self._volatility = VolatilityMonitor(settings.volatility_window_ms, settings.volatility_trigger)
        self._execs: dict[RequestId, Execution] = {}
        self._legs: dict[ClientOrderId, Leg] = {}
        self._by_key: dict[str, RequestId] = {}
        self._queued: deque[RequestId] = deque()
        self._out: list[Command] = []

    # ---- queries ------------------------------------------------------------------------------------
    def leg(self, cid: ClientOrderId) -> Leg | None:
        """The leg with this client order id."""
        return self._legs.get(cid)

    def execution(self, request_id: RequestId) -> Execution | None:
        """The execution of a request."""
        return self._execs.get(request_id)

    def open_legs(self) -> list[Leg]:
        """Legs not yet terminal."""
        return [leg for leg in self._legs.values() if not leg.terminal]

    def active(self) -> list[Execution]:
        """Executions not yet done."""
        return [e for e in self._execs.values() if e.phase is not Phase.DONE]

    def forget_finished(self) -> int:
        """Drop finished executions and their legs from memory (they are stored); returns how many."""
        done = [rid for rid, e in self._execs.items() if e.phase is Phase.DONE]
        for rid in done:
            execution = self._execs.pop(rid)
            self._by_key.pop(execution.request.idempotency_key, None)
            for cid in execution.legs:
                self._legs.pop(cid, None)
        return len(done)

    def resume(self, now_ms: int) -> list[Command]:
        """Timers to re-arm after the actor restarted (timers die with an actor; the book does not)."""
        self._out = []
        for execution in self.active():
            if (
                execution.phase is Phase.LIMIT
                and execution.resolved
                and execution.request.order_type is not OrderType.MARKET
            ):
                timeout_ms = self.settings.limit_timeout_ms
                if execution.request.limit_timeout_s is not None:
                    timeout_ms = int(execution.request.limit_timeout_s * 1000)
                self._out.append(
                    Schedule(_timeout_key(execution.request.request_id), execution.created_ms + timeout_ms)
                )
        for leg in self._legs.values():
            self._poll_resolver(leg, now_ms)
        return self._take()

    # ---- intake -------------------------------------------------------------------------------------
    def place(self, request: OrderRequest, now_ms: int, ctx: IntakeContext) -> list[Command]:
        """A new request: refuse it, replay it (same idempotency key), queue it, or start executing it."""
        self._out = []
        known = self._by_key.get(request.idempotency_key)
        if known is not None:
            self._replay(request, known)
            return self._take()
        refusal = check_intake(request, self, ctx, now_ms)
        if refusal is not None:
            self._out.append(Resolve(request.request_id, refusal))
            return self._take()
        execution = Execution(request, now_ms)
        self._execs[request.request_id] = execution
        self._by_key[request.idempotency_key] = request.request_id
        if any(e is not execution and e.phase is not Phase.DONE for e in self._execs.values()):
            # conflict_policy = queue (check_intake refused it otherwise): start when the pair is free.
            execution.phase = Phase.QUEUED
            self._queued.append(request.request_id)
            return self._take()
        self._start(execution, now_ms)
        return self._take()

    def _replay(self, request: OrderRequest, known: RequestId) -> None:
        execution = self._execs[known]
        primary = self._legs.get(execution.legs[0]) if execution.legs else None
        if execution.resolved and primary is not None:
            self._out.append(Resolve(request.request_id, Accepted(order_of(primary), duplicate=True)))
        else:
            # The original is still on its way: the new caller gets the same answer when it comes.
            self._out.append(
                Resolve(
                    request.request_id,
                    Refusal(
                        RefusalReason.CONFLICT,
                        "the same idempotency key is already being executed",
                        {"request_id": known},
                    ),
                )
            )

    def _start(self, execution: Execution, now_ms: int) -> None:
        request = execution.request
        execution.phase = Phase.LIMIT
        if request.order_type is OrderType.MARKET:
            execution.reference_price = self.book.mid
            self._new_leg(execution, OrderRole.PRIMARY, OrderType.MARKET, request.amount, None, TimeInForce.GTC, now_ms)
            return
        price = request.price if request.price is not None else self._limit_price(request.side)
        assert price is not None  # check_intake refused a priceless limit without a book
        execution.reference_price = request.price if request.price is not None else self.book.mid
        self._new_leg(
            execution, OrderRole.PRIMARY, request.order_type, request.amount, price, request.time_in_force, now_ms
        )

    def _limit_price(self, side: Side) -> Decimal | None:
        if self.settings.limit_price_side == "maker":
            return self.book.maker_price(side)
        return self.book.taker_price(side)

    def _new_leg(
        self,
        execution: Execution,
        role: OrderRole,
        order_type: OrderType,
        quantity: Decimal,
        price: Decimal | None,
        tif: TimeInForce,
        now_ms: int,
    ) -> Leg:
        request = execution.request
        n = execution.fallback_count
        cid = client_order_id(request.idempotency_key, fallback=n)
        leg = Leg(
            state=OrderState.new(cid, self.symbol, request.side, quantity),
            request_id=request.request_id,
            pair=self.pair,
            role=role,
            order_type=order_type,
            time_in_force=tif,
            price=price,
            created_ms=now_ms,
            updated_ms=now_ms,
            exchange=self.settings.exchange,
            parent=execution.legs[0] if execution.legs else None,
        )
        self._legs[cid] = leg
        execution.legs.append(cid)
        # Write-ahead: the intent is durable before the order leaves, so a crash at any instant finds it.
        self._out.append(WriteAhead(order_of(leg)))
        return leg

    def on_durable(self, cid: ClientOrderId, now_ms: int) -> list[Command]:
        """The intent of `cid` is stored: send the create."""
        self._out = []
        leg = self._legs.get(cid)
        if leg is not None and leg.state.status is OrderStatus.PENDING_SUBMIT:
            self._send_create(leg, now_ms)
        return self._take()

    def _send_create(self, leg: Leg, now_ms: int) -> None:
        execution = self._execs[leg.request_id]
        priority = Priority.FALLBACK if leg.role is OrderRole.FALLBACK else execution.request.priority
        self._out.append(
            Send(
                create_request(
                    symbol=self.symbol,
                    pair=self.pair,
                    cid=leg.cid,
                    side=leg.state.side,
                    order_type=leg.order_type,
                    quantity=leg.state.amount,
                    price=leg.price,
                    time_in_force=leg.time_in_force,
                    priority=priority,
                )
            )
        )
        if leg.state.status is OrderStatus.PENDING_SUBMIT:
            self._apply(leg, Submitted(), now_ms)

    # ---- gateway results ----------------------------------------------------------------------------
    def on_result(self, result: GatewayResult, now_ms: int) -> list[Command]:
        """A gateway call this book asked for has finished."""
        self._out = []
        leg = self._legs.get(ClientOrderId(result.request.key))
        if leg is None:
            logger.warning("result for unknown order {} ignored", result.request.key)
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
            self._error(f"{op.value} response unreadable", leg.cid, str(exc), now_ms)
        self._progress(self._execs[leg.request_id], now_ms)
        return self._take()

    def _on_create(self, leg: Leg, result: GatewayResult, now_ms: int) -> None:
        error = result.error
        if error is None:
            self._apply_snapshot(leg, result.data, now_ms)
            self._accepted(leg, now_ms)
            return
        self._record(error, leg.cid, now_ms)
        if isinstance(error, OutcomeUnknown):
            self._apply(leg, SubmitOutcomeUnknown(), now_ms)
            leg.resolver = UnknownOutcomeResolver(
                leg.cid, submitted_ms=now_ms, grace_ms=self.settings.unknown_outcome_grace_ms
            )
            self._poll_resolver(leg, now_ms)
        elif isinstance(error, RetryLater) and leg.resends < self.settings.max_create_resends:
            # Nothing was executed (429, clock skew): the same client order id may go again.
            leg.resends += 1
            self._apply(leg, NotCreated(), now_ms)
            self._send_create(leg, now_ms)
        else:
            self._apply(leg, CreateRejected(f"{type(error).__name__}: {error.exchange_message or error}"), now_ms)
            execution = self._execs[leg.request_id]
            if (
                leg.role is OrderRole.PRIMARY
                and isinstance(error, FilterRejected)
                and _is_percent_price(error)
                and execution.request.price is not None
            ):
                # The limit is outside the allowed band: the market has run away — go to the fallback now.
                execution.note = f"limit rejected by {error.filter_name}; fallback within the slippage bound"
                execution.phase = Phase.CANCELLING
            if isinstance(error, StopTrading):
                self._out.append(Alert("stop_trading", str(error), leg.cid))

    def _accepted(self, leg: Leg, now_ms: int) -> None:
        execution = self._execs[leg.request_id]
        order = order_of(leg)
        if leg.role is OrderRole.PRIMARY:
            if not execution.resolved:
                execution.resolved = True
                self._out.append(Resolve(execution.request.request_id, Accepted(order)))
            self._emit(EventKind.ACCEPTED, leg, now_ms)
            if leg.order_type is not OrderType.MARKET and not leg.terminal:
                timeout_ms = self.settings.limit_timeout_ms
                if execution.request.limit_timeout_s is not None:
                    timeout_ms = int(execution.request.limit_timeout_s * 1000)
                self._out.append(
                    Schedule(_timeout_key(execution.request.request_id), execution.created_ms + timeout_ms)
                )
        else:
            self._emit(EventKind.FALLBACK, leg, now_ms, "fallback order accepted")

    def _apply_snapshot(self, leg: Leg, data: object, now_ms: int, *, cancel: bool = False) -> None:
        if not isinstance(data, dict):
            raise WireFormatError("order response is not an object")
        snap = parse_order(data, client_order_id_key="origClientOrderId" if cancel else "clientOrderId")
        if not cancel:
            self._apply(leg, Acked(snap.order_id), now_ms)
        time_ms = int(snap.time.timestamp() * 1000)
        for f in snap.fills:
            # Fills in the create response matched on arrival: the new order was the taker.
            self._apply(
                leg,
                FillEvent(
                    f.trade_id,
                    f.quantity,
                    f.price,
                    f.price * f.quantity,
                    f.commission,
                    f.commission_asset,
                    False,
                    time_ms,
                    snap.order_id,
                ),
                now_ms,
            )
        self._apply(leg, status_from_rest_order(data), now_ms)

    def _on_cancel(self, leg: Leg, result: GatewayResult, now_ms: int) -> None:
        error = result.error
        if error is None:
            self._apply_snapshot(leg, result.data, now_ms, cancel=True)
            return
        self._record(error, leg.cid, now_ms)
        # -2011 "Unknown order sent.": already filled or canceled (or not yet visible) — find out which.
        self._apply(leg, CancelRejected(str(error), order_gone=isinstance(error, OrderNotFound)), now_ms)
        if not isinstance(error, OrderNotFound):
            self._out.append(Send(fetch_request(self.symbol, self.pair, leg.cid)))

    def _on_fetch(self, leg: Leg, result: GatewayResult, now_ms: int) -> None:
        error = result.error
        resolver = leg.resolver
        if error is None:
            if resolver is not None:
                resolver.on_lookup_found(now_ms)
                leg.resolver = None
            self._apply_snapshot(leg, result.data, now_ms)
            self._accepted(leg, now_ms)
            return
        if resolver is None:
            self._record(error, leg.cid, now_ms)
            return
        state = (
            resolver.on_lookup_not_found(now_ms)
            if isinstance(error, OrderNotFound)
            else resolver.on_lookup_failed(error, now_ms)
        )
        if state is Resolution.NOT_CREATED:
            leg.resolver = None
            self._apply(leg, NotCreated(), now_ms)
            if leg.resends < self.settings.max_create_resends:
                leg.resends += 1
                self._send_create(leg, now_ms)
            else:
                self._apply(leg, CreateRejected("never created after repeated attempts"), now_ms)
        elif state is Resolution.GAVE_UP:
            self._out.append(Alert("outcome_unknown", "order outcome still unknown after every lookup", leg.cid))
            execution = self._execs[leg.request_id]
            if not execution.resolved and leg.role is OrderRole.PRIMARY:
                execution.resolved = True
                self._out.append(
                    Resolve(
                        execution.request.request_id,
                        Refusal(
                            RefusalReason.OUTCOME_UNKNOWN,
                            "the exchange never confirmed the order; it may exist and will be reconciled",
                            {"client_order_id": leg.cid},
                        ),
                    )
                )
        else:
            self._poll_resolver(leg, now_ms)

    def _poll_resolver(self, leg: Leg, now_ms: int) -> None:
        resolver = leg.resolver
        if resolver is None:
            return
        if resolver.poll(now_ms) is not None:
            self._out.append(Send(fetch_request(self.symbol, self.pair, leg.cid)))
            return
        due = resolver.next_lookup_ms
        if due is not None:
            self._out.append(Schedule(_lookup_key(leg.cid), due))

    def _on_trades(self, leg: Leg, result: GatewayResult, now_ms: int) -> None:
        if result.error is not None:
            self._record(result.error, leg.cid, now_ms)
            return
        rows = result.data if isinstance(result.data, list) else []
        for row in rows:
            if leg.state.exchange_order_id is None or int(row.get("orderId", -1)) == leg.state.exchange_order_id:
                self._apply(leg, fill_from_my_trade(row), now_ms)
        leg.fill_fetches += 1
        if leg.state.missing_qty > 0:
            if leg.fill_fetches < _MAX_FILL_FETCHES:
                # REST can lag the matching engine: ask again shortly rather than invent the fills.
                self._out.append(Schedule(f"fills:{leg.cid}", now_ms + _FILL_REFETCH_MS))
            else:
                self._out.append(
                    Alert("fills_missing", f"{leg.state.missing_qty} executed but no fills found", leg.cid)
                )

    # ---- reports, timers, prices, cancels -----------------------------------------------------------
    def on_report_events(self, cid: ClientOrderId, events: tuple[OrderEvent, ...], now_ms: int) -> list[Command]:
        """Events for one of this book's orders (from an execution report or a reconciliation)."""
        self._out = []
        leg = self._legs.get(cid)
        if leg is None:
            return self._take()
        for event in events:
            self._apply(leg, event, now_ms)
        if leg.state.exchange_order_id is not None and leg.role is OrderRole.PRIMARY:
            self._accepted_once(leg, now_ms)
        self._progress(self._execs[leg.request_id], now_ms)
        return self._take()

    def on_report(self, report: object, now_ms: int) -> list[Command]:
        """An execution report from the user data stream (`engine.exchange.ExecutionReport`)."""
        from engine.exchange import ExecutionReport

        if not isinstance(report, ExecutionReport):
            return []
        cid = ClientOrderId(report.orig_client_order_id or report.client_order_id)
        return self.on_report_events(cid, events_from_report(report), now_ms)

    def _accepted_once(self, leg: Leg, now_ms: int) -> None:
        execution = self._execs[leg.request_id]
        if not execution.resolved:
            # A report (fill before ack) told us the order exists before the REST answer did.
            if leg.resolver is not None:
                leg.resolver.on_order_seen(now_ms)
                leg.resolver = None
            self._accepted(leg, now_ms)

    def on_timer(self, key: str, now_ms: int) -> list[Command]:
        """A timer scheduled by this book fired."""
        self._out = []
        kind, _, ident = key.partition(":")
        if kind == "timeout":
            execution = self._execs.get(RequestId(ident))
            if execution is not None and execution.phase is Phase.LIMIT:
                self._cancel_primary(execution, "limit timeout", now_ms)
        elif kind == "lookup":
            leg = self._legs.get(ClientOrderId(ident))
            if leg is not None:
                self._poll_resolver(leg, now_ms)
        elif kind == "fills":
            leg = self._legs.get(ClientOrderId(ident))
            if leg is not None and leg.state.missing_qty > 0 and leg.state.exchange_order_id is not None:
                self._out.append(Send(trades_request(self.symbol, self.pair, leg.cid, leg.state.exchange_order_id)))
        return self._take()

    def on_price(self, bid: Decimal | None, ask: Decimal | None, now_ms: int) -> list[Command]:
        """The latest best bid/ask; a volatility spike cuts resting limits short."""
        self._out = []
        self.book = Book(bid, ask, now_ms)
        mid = self.book.mid
        if mid is not None:
            self._volatility.observe(now_ms, mid)
            if self._volatility.triggered(now_ms):
                for execution in self.active():
                    if execution.phase is Phase.LIMIT and execution.request.order_type is not OrderType.MARKET:
                        move = self._volatility.move(now_ms)
                        self._cancel_primary(execution, f"volatility spike ({move:.2%} in the window)", now_ms)
        return self._take()

    def cancel(self, request_id: RequestId, now_ms: int) -> list[Command]:
        """The caller cancels a request: cancel what rests, and do not fall back."""
        self._out = []
        execution = self._execs.get(request_id)
        if execution is None or execution.phase is Phase.DONE:
            return self._take()
        execution.note = "canceled by the caller"
        if execution.phase is Phase.QUEUED:
            self._queued.remove(request_id)
            execution.phase = Phase.DONE
            self._out.append(Resolve(request_id, Refusal(RefusalReason.SHUTTING_DOWN, "canceled before it started")))
            self._finish(execution, now_ms)
            return self._take()
        execution.phase = Phase.FALLBACK  # no fallback after a caller's cancel: wait for the legs to end
        for cid in execution.legs:
            leg = self._legs[cid]
            if not leg.terminal and leg.state.status is not OrderStatus.PENDING_CANCEL:
                self._apply(leg, CancelRequested(), now_ms)
                self._out.append(Send(cancel_request(self.symbol, self.pair, cid)))
        self._progress(execution, now_ms)
        return self._take()

    def _cancel_primary(self, execution: Execution, why: str, now_ms: int) -> None:
        leg = self._legs[execution.legs[0]]
        execution.phase = Phase.CANCELLING
        execution.cancel_reason = why
        self._out.append(Unschedule(_timeout_key(execution.request.request_id)))
        if leg.terminal:
            return
        if leg.state.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.SUBMITTED):
            self._apply(leg, CancelRequested(), now_ms)
            self._out.append(Send(cancel_request(self.symbol, self.pair, leg.cid)))
            logger.bind(pair=self.pair, client_order_id=leg.cid).info("cancelling limit: {}", why)

    # ---- progress: fallback and the end of a request ------------------------------------------------
    def _progress(self, execution: Execution, now_ms: int) -> None:
        legs = [self._legs[c] for c in execution.legs]
        if execution.phase is Phase.DONE or not legs or not all(leg.terminal for leg in legs):
            return
        # What the exchange says was executed, even where its fills are still being fetched: the fallback
        # must never re-buy a quantity that already filled.
        executed = sum((leg.state.amount - leg.state.remaining for leg in legs), Decimal(0))
        remainder = execution.request.amount - executed
        primary = legs[0]
        if execution.phase is Phase.CANCELLING and remainder > 0:
            self._fallback(execution, remainder, now_ms)
            return
        if execution.phase is Phase.SETTLING:
            self._done(execution, now_ms)
            return
        if execution.phase is Phase.LIMIT:
            if primary.state.status is OrderStatus.CANCELED and remainder > 0:
                execution.note = execution.note or "limit canceled outside the engine; no fallback"
            self._done(execution, now_ms)
        else:
            self._done(execution, now_ms)

    def _fallback(self, execution: Execution, remainder: Decimal, now_ms: int) -> None:
        from engine.domain import FallbackKind

        request = execution.request
        kind = request.fallback or self.settings.fallback
        if kind is FallbackKind.NONE:
            execution.note = f"{execution.cancel_reason}; fallback disabled, {remainder} left"
            self._done(execution, now_ms)
            return
        reference = execution.reference_price or self.book.mid
        if reference is None:
            execution.note = f"{execution.cancel_reason}; no price to bound the fallback, {remainder} left"
            self._done(execution, now_ms)
            return
        decision = check_slippage(
            request.side, reference, self.book, self.settings.max_slippage, self.settings.slippage_action
        )
        if not decision.allowed:
            execution.note = f"fallback refused by the slippage guard: {decision.reason}"
            self._out.append(Alert("slippage_guard", execution.note))
            self._done(execution, now_ms)
            return
        use_market = kind is FallbackKind.MARKET and not decision.capped
        quantity = self.rules.floor_qty(remainder, market=use_market)
        price = None if use_market else self.rules.round_price(decision.bound, request.side)
        violation = (
            self.rules.check(
                side=request.side, quantity=quantity, price=price, reference_price=self.book.mid or reference
            )
            if quantity > 0
            else None
        )
        if quantity <= 0 or violation is not None:
            execution.dust = True
            why = violation.reason if violation is not None else "below the lot step"
            execution.note = f"{execution.cancel_reason}; remainder {remainder} is dust ({why})"
            self._done(execution, now_ms)
            return
        execution.fallback_count += 1
        execution.phase = Phase.FALLBACK
        execution.note = f"{execution.cancel_reason}; fallback {'market' if use_market else f'IOC limit at {price}'}"
        if decision.capped:
            execution.note += f" ({decision.reason})"
        leg = self._new_leg(
            execution,
            OrderRole.FALLBACK,
            OrderType.MARKET if use_market else OrderType.LIMIT,
            quantity,
            price,
            TimeInForce.IOC if not use_market else TimeInForce.GTC,
            now_ms,
        )
        self._emit(EventKind.FALLBACK, leg, now_ms, execution.note)

    def _done(self, execution: Execution, now_ms: int) -> None:
        legs = [self._legs[c] for c in execution.legs]
        if any(leg.state.missing_qty > 0 and leg.fill_fetches < _MAX_FILL_FETCHES for leg in legs):
            # The trade is summed from fills: wait for the missing ones (myTrades is on its way).
            execution.phase = Phase.SETTLING
            return
        execution.phase = Phase.DONE
        self._out.append(Unschedule(_timeout_key(execution.request.request_id)))
        self._finish(execution, now_ms)
        if self._queued:
            nxt = self._execs[self._queued.popleft()]
            self._start(nxt, now_ms)

    def _finish(self, execution: Execution, now_ms: int) -> None:
        legs = [self._legs[c] for c in execution.legs]
        trade = trade_of(execution, legs, now_ms)
        self._out.append(Persist(trade))
        if not execution.resolved:
            execution.resolved = True
            primary = legs[0] if legs else None
            reason = "the order was rejected" if primary is not None else execution.note
            outcome = (
                Refusal(RefusalReason.REJECTED, reason, {"client_order_id": primary.cid})
                if primary is not None
                else Refusal(RefusalReason.SHUTTING_DOWN, reason)
            )
            self._out.append(Resolve(execution.request.request_id, outcome))
        self._out.append(
            Emit(
                EngineEvent(
                    EventKind.DONE,
                    self.pair,
                    ms_to_dt(now_ms),
                    request_id=execution.request.request_id,
                    trade=trade,
                    message=execution.note,
                )
            )
        )
        logger.bind(pair=self.pair, request_id=execution.request.request_id).info(
            "request done: {} {} of {} ({})",
            trade.status.value,
            trade.filled,
            trade.requested,
            execution.note or "no note",
        )

    # ---- plumbing -----------------------------------------------------------------------------------
    def _apply(self, leg: Leg, event: OrderEvent, now_ms: int) -> None:
        leg.state, effects = apply(leg.state, event)
        leg.updated_ms = now_ms
        for effect in effects:
            self._effect(leg, effect, now_ms)

    def _effect(self, leg: Leg, effect: OrderEffect, now_ms: int) -> None:
        if isinstance(effect, StatusChanged):
            self._out.append(Persist(order_of(leg)))
            if effect.new in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
                self._emit(EventKind.CANCELED, leg, now_ms, f"{effect.old.value} → {effect.new.value}")
        elif isinstance(effect, FillApplied):
            fill = _fill_of(leg, effect.fill, self.settings.exchange)
            self._out.append(Persist(fill))
            self._out.append(Persist(order_of(leg)))
            self._out.append(
                Emit(
                    EngineEvent(
                        EventKind.FILL,
                        self.pair,
                        ms_to_dt(now_ms),
                        request_id=leg.request_id,
                        client_order_id=leg.cid,
                        order=order_of(leg),
                        fill=fill,
                    )
                )
            )
        elif isinstance(effect, FetchMissingFills):
            order_id = effect.exchange_order_id or leg.state.exchange_order_id
            if order_id is not None:
                self._out.append(Send(trades_request(self.symbol, self.pair, leg.cid, order_id)))
        elif isinstance(effect, FetchOrderStatus):
            self._out.append(Send(fetch_request(self.symbol, self.pair, leg.cid)))
        elif isinstance(effect, Anomaly):
            self._out.append(Alert("anomaly", effect.reason, leg.cid))
            self._error("order anomaly", leg.cid, effect.reason, now_ms)

    def _emit(self, kind: EventKind, leg: Leg, now_ms: int, message: str = "") -> None:
        self._out.append(
            Emit(
                EngineEvent(
                    kind,
                    self.pair,
                    ms_to_dt(now_ms),
                    request_id=leg.request_id,
                    client_order_id=leg.cid,
                    order=order_of(leg),
                    message=message,
                )
            )
        )

    def _record(self, error: ExchangeError, cid: ClientOrderId, now_ms: int) -> None:
        self._out.append(
            Persist(
                ErrorRecord(
                    operation=error.operation or "exchange",
                    exchange_code=error.code,
                    message=str(error),
                    context={"error": type(error).__name__, "http_status": str(error.http_status or "")},
                    pair=self.pair,
                    client_order_id=cid,
                    time=ms_to_dt(now_ms),
                )
            )
        )
        self._emit_error(cid, f"{type(error).__name__}: {error}", now_ms)

    def _error(self, operation: str, cid: ClientOrderId, message: str, now_ms: int) -> None:
        logger.bind(pair=self.pair, client_order_id=cid).error("{}: {}", operation, message)
        self._out.append(
            Persist(
                ErrorRecord(
                    operation=operation, message=message, pair=self.pair, client_order_id=cid, time=ms_to_dt(now_ms)
                )
            )
        )
        self._emit_error(cid, message, now_ms)

    def _emit_error(self, cid: ClientOrderId, message: str, now_ms: int) -> None:
        leg = self._legs.get(cid)
        self._out.append(
            Emit(
                EngineEvent(
                    EventKind.ERROR,
                    self.pair,
                    ms_to_dt(now_ms),
                    request_id=leg.request_id if leg else None,
                    client_order_id=cid,
                    message=message,
                )
            )
        )

    def _take(self) -> list[Command]:
        out, self._out = self._out, []
        return out


def _fill_of(leg: Leg, fill: FillEvent, exchange: str) -> Fill:
    return Fill(
        exchange=exchange,
        symbol=leg.state.symbol,
        pair=leg.pair,
        trade_id=fill.trade_id,
        client_order_id=leg.cid,
        exchange_order_id=fill.order_id or leg.state.exchange_order_id or 0,
        side=leg.state.side,
        price=fill.price,
        quantity=fill.quantity,
        quote_quantity=fill.quote_quantity,
        commission=fill.commission,
        commission_asset=fill.commission_asset or "",
        is_maker=fill.is_maker,
        time=ms_to_dt(fill.time_ms),
    )


def _is_percent_price(error: FilterRejected) -> bool:
    return str(error.filter_name or "").startswith("PERCENT_PRICE")


def _timeout_key(request_id: RequestId) -> str:
    return f"timeout:{request_id}"


def _lookup_key(cid: ClientOrderId) -> str:
    return f"lookup:{cid}"
