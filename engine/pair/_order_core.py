"""The order desk's core: the legs, the hooks the request level implements, and the plumbing. Pure.

`OrderDesk` (`_orders`) derives from it and handles what the exchange answers (gateway results, reports,
order timers). Here: the create and its write-ahead, re-sending a create under the same id, cancels (held
until the ack when the exchange has not confirmed the order yet), a create that failed for good, and applying
order events to a leg with the records, events and follow-up requests each change brings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from loguru import logger

from engine.api import EventKind
from engine.domain import (
    ClientOrderId,
    ErrorRecord,
    OrderRole,
    OrderStatus,
    OrderType,
    Pair,
    pair_to_symbol,
    plain_decimal,
)
from engine.exchange import ExchangeError, ExchangeOrderStatus, Rejected, StopTrading
from engine.execution import SymbolRules
from engine.gateway import GatewayRequest
from engine.orders import (
    Anomaly,
    CancelRequested,
    CreateRejected,
    ExchangeStatus,
    FetchMissingFills,
    FetchOrderStatus,
    FillApplied,
    FillEvent,
    OrderEffect,
    OrderEvent,
    OrderState,
    StatusChanged,
    Submitted,
    apply,
)
from engine.pair._commands import Alert, Command, Emit, Persist, Send, Withdraw, WriteAhead
from engine.pair._legs import Leg, ms_to_dt, order_of
from engine.pair._params import cancel_request, create_request, fetch_request, trades_request
from engine.pair._records import closed_words, error_event, error_record, fill_of, leg_event
from engine.pair._settings import PairSettings

__all__ = ["OrderCore"]

_CANCELABLE = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
_NOT_YET_ACKED = (OrderStatus.PENDING_SUBMIT, OrderStatus.SUBMITTED)


def _nowhere(_cid: ClientOrderId) -> bool:
    return False


class OrderCore(ABC):
    """The legs, the hooks and the plumbing of `OrderDesk` (see module docstring)."""

    def __init__(self, pair: Pair, rules: SymbolRules, settings: PairSettings) -> None:
        self.pair = pair
        self.symbol = pair_to_symbol(pair)
        self.rules = rules
        self.settings = settings
        self._legs: dict[ClientOrderId, Leg] = {}
        self._aliases: dict[str, tuple[ClientOrderId, int | None]] = {}
        """The client order ids the exchange gave this book's orders amended outside the engine → ours and the order's
        exchange id (kept after the order leaves memory: a late report names it by the new id)."""
        self._out: list[Command] = []
        self.tracking_only = False
        """Set when the root runs the book instead of a pair actor: the pair is halted past its restart budget,
        or no longer whitelisted. It still applies what the exchange says and looks orders up, but it never
        creates or cancels one."""
        self.tracking_reason = "the pair is halted past its restart budget"
        """Why the book is tracking only, in the words a refused fallback or re-send is closed with."""
        self.in_gateway: Callable[[ClientOrderId], bool] = _nowhere
        """Is a create for this client order id still in the gateway, unanswered (set by the pair actor)?"""
        self.cancels_allowed = False
        """A tracking-only book that may still cancel (a halted whitelisted pair: a cancel is not a new order, and
        a limit left resting past its deadline could fill days later). Its fallbacks are still refused."""

    # ---- hooks: what the request level hears ---------------------------------------------------------
    @abstractmethod
    def _leg_acked(self, leg: Leg, now_ms: int) -> None:
        """The exchange confirmed the order exists (ack, lookup, or a report before the ack)."""

    @abstractmethod
    def _leg_filled(self, leg: Leg, fill: FillEvent, now_ms: int) -> None:
        """A new fill was applied to the leg."""

    @abstractmethod
    def _leg_failed(self, leg: Leg, error: ExchangeError, now_ms: int) -> None:
        """The create failed for good (the leg is REJECTED)."""

    @abstractmethod
    def _leg_not_created(self, leg: Leg, now_ms: int) -> None:
        """An unknown outcome resolved to "never created"; the leg is PENDING_SUBMIT again."""

    @abstractmethod
    def _leg_unresolved(self, leg: Leg, now_ms: int) -> None:
        """Every lookup of an unknown outcome failed: the order may exist; reconciliation will tell."""

    @abstractmethod
    def _leg_vanished(self, leg: Leg, why: str, now_ms: int) -> None:
        """The exchange does not know the (acknowledged) leg: it was closed here; end its request."""

    @abstractmethod
    def _leg_amended(self, leg: Leg, now_ms: int) -> None:
        """The leg's order was amended outside the engine (`_amended`): tell its request's plan."""

    @abstractmethod
    def _cancel_failed(self, leg: Leg, error: ExchangeError, now_ms: int) -> None:
        """A cancel of the leg failed."""

    @abstractmethod
    def _leg_changed(self, leg: Leg, now_ms: int) -> None:
        """Called once after every message that touched the leg (terminal status, settled fills)."""

    # ---- sending -------------------------------------------------------------------------------------
    def on_write_ahead_failed(self, cid: ClientOrderId, message: str, now_ms: int) -> list[Command]:
        """The intent of `cid` could not be made durable: its create was never sent; the order fails."""
        self._out = []
        leg = self._legs.get(cid)
        if leg is not None and leg.state.status is OrderStatus.SUBMITTED and not leg.acked:
            self._out.append(Alert("write_ahead_failed", f"order intent not stored, not sent: {message}", cid))
            self._fail(leg, ExchangeError(f"the order intent could not be stored: {message}", operation="write_ahead"),
                       now_ms)  # fmt: skip
            self._leg_changed(leg, now_ms)
        return self._take()

    def _create_request(self, leg: Leg) -> GatewayRequest:
        return create_request(
            symbol=self.symbol,
            pair=self.pair,
            cid=leg.cid,
            side=leg.state.side,
            order_type=leg.order_type,
            quantity=leg.state.amount,
            price=leg.price,
            time_in_force=leg.time_in_force,
            priority=leg.priority,
        )

    def _write_ahead_and_send(self, leg: Leg, now_ms: int) -> None:
        # Write-ahead: the intent is durable before the order leaves, so a crash at any instant finds it. The
        # create rides with it and leaves from the commit; the leg counts as submitted from here on.
        if self._refused_tracking_only(leg, now_ms):
            return
        self._out.append(WriteAhead(order_of(leg), self._create_request(leg)))
        self._apply(leg, Submitted(), now_ms)

    def _send_create(self, leg: Leg, now_ms: int) -> None:
        """Send the create of a leg whose intent is already durable (a re-send under the same id).

        Only an order known not to exist is sent again (PENDING_SUBMIT: never sent, or concluded "not created");
        any other status means the exchange has or may have it, and a re-send could be a duplicate.
        """
        if leg.state.status is not OrderStatus.PENDING_SUBMIT:
            logger.bind(pair=self.pair, client_order_id=leg.cid).error(
                "create not re-sent: the order is {}, not known to be uncreated", leg.state.status.value
            )
            return
        if self._refused_tracking_only(leg, now_ms):
            return
        self._out.append(Send(self._create_request(leg)))
        self._apply(leg, Submitted(), now_ms)

    def _refused_tracking_only(self, leg: Leg, now_ms: int) -> bool:
        """In a tracking-only book an order the plan wants created (a fallback, a re-send) is closed as refused
        here, never sent: the pair may not trade, and its plan ends with what was filled (the remainder reported)."""
        if not self.tracking_only:
            return False
        bound = logger.bind(pair=self.pair, client_order_id=leg.cid)
        bound.warning("not sent: {} (tracked only)", self.tracking_reason)
        self._fail(leg, Rejected(f"not sent: {self.tracking_reason} (tracked only)", operation="create_order"), now_ms)
        return True

    def _cancel_leg(self, leg: Leg, why: str, now_ms: int) -> None:
        """Cancel `leg` now, or at its ack if the exchange has not confirmed it yet."""
        if self.tracking_only and not self.cancels_allowed:
            # The order stays as it is at the exchange, tracked (as `on_shutdown = keep` leaves orders open).
            logger.bind(pair=self.pair, client_order_id=leg.cid).warning(
                "not canceled ({}): the pair is tracked only", why
            )
            return
        if leg.state.status in _NOT_YET_ACKED:
            # A cancel overtaking its create would find nothing (-2011) and the order would then rest. A create still
            # waiting in the gateway (a Retry-After, an order window) never leaves: it went out when the wait ended,
            # and a market order canceled meanwhile was filled. One already sent is canceled at its ack.
            leg.cancel_wanted = True
            self._out.append(Withdraw(leg.cid))
            return
        if leg.state.status in _CANCELABLE:
            self._apply(leg, CancelRequested(), now_ms)
            self._out.append(Send(cancel_request(self.symbol, self.pair, leg.cid, leg.order_ref)))
            logger.bind(pair=self.pair, client_order_id=leg.cid).info("cancelling: {}", why)

    def _acked(self, leg: Leg, now_ms: int) -> None:
        if leg.resolver is not None:
            leg.resolver.on_order_seen(now_ms)
            leg.resolver = None
        if not leg.acked:
            leg.acked, leg.acked_ms = True, now_ms
            self._leg_acked(leg, now_ms)
        if leg.cancel_wanted and leg.state.status in _CANCELABLE:
            leg.cancel_wanted = False
            self._cancel_leg(leg, "canceled before the ack", now_ms)

    def _fail(self, leg: Leg, error: ExchangeError, now_ms: int) -> None:
        self._apply(leg, CreateRejected(f"{type(error).__name__}: {error.exchange_message or error}"), now_ms)
        leg.told_closed = True
        if isinstance(error, StopTrading):
            self._out.append(Alert("stop_trading", str(error), leg.cid))
        self._leg_failed(leg, error, now_ms)

    # ---- plumbing ------------------------------------------------------------------------------------
    def _apply(self, leg: Leg, event: OrderEvent, now_ms: int) -> None:
        if isinstance(event, ExchangeStatus) and event.status is ExchangeOrderStatus.EXPIRED_IN_MATCH:
            leg.prevented = True  # the state machine knows it as EXPIRED; the plan must know why
        if leg.role is OrderRole.EXTERNAL and leg.order_type is OrderType.MARKET:
            leg.state, effects = _apply_unsized(leg.state, event)
        else:
            leg.state, effects = apply(leg.state, event)
        leg.updated_ms = now_ms
        for effect in effects:
            self._effect(leg, effect, now_ms)

    def _effect(self, leg: Leg, effect: OrderEffect, now_ms: int) -> None:
        if isinstance(effect, StatusChanged):
            self._out.append(Persist(order_of(leg)))
            if effect.new in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
                self._emit(EventKind.CANCELED, leg, now_ms, closed_words(leg))
        elif isinstance(effect, FillApplied):
            fill = fill_of(leg, effect.fill, self.settings.exchange)
            self._out.append(Persist(fill))
            self._out.append(Persist(order_of(leg)))
            self._out.append(Emit(leg_event(EventKind.FILL, leg, now_ms, fill=fill)))
            self._leg_filled(leg, effect.fill, now_ms)
        elif isinstance(effect, FetchMissingFills):
            order_id = effect.exchange_order_id or leg.state.exchange_order_id
            if order_id is not None:
                self._out.append(Send(trades_request(self.symbol, self.pair, leg.cid, order_id)))
        elif isinstance(effect, FetchOrderStatus):
            self._out.append(Send(fetch_request(self.symbol, self.pair, leg.cid, leg.order_ref)))
        elif isinstance(effect, Anomaly):
            self._out.append(Alert("anomaly", effect.reason, leg.cid))
            self._error("order anomaly", leg.cid, effect.reason, now_ms)

    def _emit(self, kind: EventKind, leg: Leg, now_ms: int, message: str = "") -> None:
        self._out.append(Emit(leg_event(kind, leg, now_ms, message)))

    def _amended(self, leg: Leg, exchange_cid: str, quantity: Decimal | None, now_ms: int) -> None:
        """The exchange's word on `leg`'s order (a report, an open-orders row, a lookup): the client order id it knows
        it by, and its quantity. Another id (order amend keep priority gives a new one unless told to keep it): it is
        looked up and canceled by its order id from then on. A quantity below the last known one: amended outside
        the engine, told once per amend (repeated reports, restarts: the quantity says whether it is new), and its
        request's plan hears it (not for another party's own order)."""
        new_id = bool(exchange_cid) and exchange_cid != leg.cid and exchange_cid != leg.exchange_cid
        if exchange_cid and exchange_cid != leg.cid:
            self._aliases[exchange_cid] = (leg.cid, leg.state.exchange_order_id)
            leg.by_order_id = True
            leg.exchange_cid = exchange_cid
        known = leg.exchange_qty if leg.exchange_qty is not None else leg.state.amount
        amended = quantity is not None and 0 < quantity < known and leg.role is not OrderRole.EXTERNAL
        if amended:
            leg.exchange_qty = quantity
        if new_id or amended:  # stored: after a restart the order is known by both ids, the amend not told again
            leg.snapshot, leg.updated_ms = None, max(leg.updated_ms, now_ms)
            self._out.append(Persist(order_of(leg)))
        if not amended or quantity is None:
            return
        known_as = f"; the exchange knows it as {exchange_cid}, followed by its order id" if leg.by_order_id else ""
        message = (
            f"amended outside the engine: quantity {plain_decimal(quantity)} (was {plain_decimal(known)}){known_as}"
        )
        logger.bind(pair=self.pair, client_order_id=leg.cid).warning(message)
        self._out.append(Alert("external_amend", message, leg.cid))
        self._leg_amended(leg, now_ms)

    def _record(self, error: ExchangeError, cid: ClientOrderId, now_ms: int) -> None:
        self._out.append(Persist(error_record(error, self.pair, cid, now_ms)))
        self._emit_error(cid, f"{type(error).__name__}: {error}", now_ms)

    def _error(self, operation: str, cid: ClientOrderId, message: str, now_ms: int) -> None:
        logger.bind(pair=self.pair, client_order_id=cid).error("{}: {}", operation, message)
        record = ErrorRecord(
            operation=operation, message=message, pair=self.pair, client_order_id=cid, time=ms_to_dt(now_ms)
        )
        self._out.append(Persist(record))
        self._emit_error(cid, message, now_ms)

    def _emit_error(self, cid: ClientOrderId, message: str, now_ms: int) -> None:
        leg = self._legs.get(cid)
        self._out.append(Emit(error_event(self.pair, leg.request_id if leg else None, cid, message, now_ms)))

    def _take(self) -> list[Command]:
        out, self._out = self._out, []
        return out


def _apply_unsized(state: OrderState, event: OrderEvent) -> tuple[OrderState, tuple[OrderEffect, ...]]:
    """`apply` for a market order placed outside the engine, whose quantity is the exchange's business.

    One placed for a quote amount (quoteOrderQty) is reported with quantity 0: its quantity is what the quote
    amount buys. Its amount follows the exchange's cumulative quantity and the fills, so they are recorded rather
    than refused as impossible; and it ends only when the exchange says so (FILLED, or CANCELED/EXPIRED with the
    quote amount partly spent), never because its fills reached the amount known here — that amount is only what
    has filled so far, and sizing it to a first partial fill closed the order while it was still trading.
    """
    if isinstance(event, ExchangeStatus):
        if event.cum_qty > state.amount:
            state = replace(state, amount=event.cum_qty)
        return apply(state, event)
    if not isinstance(event, FillEvent) or event.quantity <= 0 or state.has_trade(event.trade_id):
        return apply(state, event)
    # Room for more than this fill brings, so the machine counts it as partial: the status stays the exchange's.
    roomy = replace(state, amount=max(state.amount, state.filled + event.quantity) + 1)
    new, effects = apply(roomy, event)
    return replace(new, amount=max(state.amount, new.filled)), effects
