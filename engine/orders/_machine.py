"""The order state machine: a transition table `(status, trigger) → status` and an event-sourced `apply`.

Statuses only move "forward" for exchange reports (open < partially filled < canceled/expired < filled),
so duplicated, stale or reordered reports converge on the same state. Fill accounting is separate from
the status: fills are deduplicated by trade id (per order, so both sides of a self-trade count once each),
the exchange's cumulative quantity never goes backwards, and when it is ahead of the fills known here the
caller is told to fetch the missing ones — they are never invented.

Invalid transitions are logged and ignored; `apply` never raises.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, fields
from decimal import Decimal
from enum import Enum, auto
from operator import attrgetter
from typing import Final

from loguru import logger

from engine.domain import ClientOrderId, ExchangeOrderId, OrderStatus, Side, Symbol, TradeId
from engine.exchange import ExchangeOrderStatus
from engine.orders._events import (
    Acked,
    Anomaly,
    CancelRejected,
    CancelRequested,
    CreateRejected,
    ExchangeStatus,
    FetchMissingFills,
    FetchOrderStatus,
    FillApplied,
    FillEvent,
    NotCreated,
    OrderEffect,
    OrderEvent,
    StatusChanged,
    SubmitOutcomeUnknown,
    Submitted,
)

__all__ = ["TRANSITIONS", "OrderState", "Trigger", "apply", "replay"]


class Trigger(Enum):
    """What an event means for the status (fills and reports are classified by quantity and `X`)."""

    SUBMIT = auto()
    OUTCOME_UNKNOWN = auto()
    NOT_CREATED = auto()
    CREATE_REJECTED = auto()
    ACK = auto()
    CANCEL_REQUEST = auto()
    CANCEL_REJECTED = auto()
    FILL_PARTIAL = auto()
    FILL_COMPLETE = auto()
    REPORT_NEW = auto()
    REPORT_PARTIAL = auto()
    REPORT_FILLED = auto()
    REPORT_CANCELED = auto()
    REPORT_EXPIRED = auto()
    REPORT_REJECTED = auto()


_REVERT: Final = "revert"  # cancel failed: back to OPEN or PARTIALLY_FILLED, whichever the fills say

S, T = OrderStatus, Trigger
TRANSITIONS: Final[dict[tuple[OrderStatus, Trigger], OrderStatus | str]] = {
    # -- PENDING_SUBMIT: intent written, not sent (or sent just before a crash) ------------------------------
    (S.PENDING_SUBMIT, T.SUBMIT): S.SUBMITTED,  # the request leaves the process
    (S.PENDING_SUBMIT, T.CREATE_REJECTED): S.REJECTED,  # refused before or at the exchange
    (S.PENDING_SUBMIT, T.ACK): S.OPEN,  # crash between send and commit: found on restart
    (S.PENDING_SUBMIT, T.REPORT_NEW): S.OPEN,  # same, learnt from the stream or reconciliation
    (S.PENDING_SUBMIT, T.REPORT_PARTIAL): S.PARTIALLY_FILLED,
    (S.PENDING_SUBMIT, T.REPORT_FILLED): S.FILLED,
    (S.PENDING_SUBMIT, T.REPORT_CANCELED): S.CANCELED,
    (S.PENDING_SUBMIT, T.REPORT_EXPIRED): S.EXPIRED,
    (S.PENDING_SUBMIT, T.REPORT_REJECTED): S.REJECTED,
    (S.PENDING_SUBMIT, T.FILL_PARTIAL): S.PARTIALLY_FILLED,
    (S.PENDING_SUBMIT, T.FILL_COMPLETE): S.FILLED,
    (S.PENDING_SUBMIT, T.NOT_CREATED): S.PENDING_SUBMIT,  # duplicate conclusion
    # -- SUBMITTED: sent, outcome unknown until ack / report / lookup ------------------------------------------
    (S.SUBMITTED, T.SUBMIT): S.SUBMITTED,  # duplicate
    (S.SUBMITTED, T.OUTCOME_UNKNOWN): S.SUBMITTED,  # timeout/5xx: stays submitted, NOT rejected (#4411)
    (S.SUBMITTED, T.NOT_CREATED): S.PENDING_SUBMIT,  # resolver: never created → resend with the same id
    (S.SUBMITTED, T.CREATE_REJECTED): S.REJECTED,  # definite rejection (filter, balance, …)
    (S.SUBMITTED, T.ACK): S.OPEN,  # the normal ack
    (S.SUBMITTED, T.REPORT_NEW): S.OPEN,  # the stream's NEW may beat the REST ack
    (S.SUBMITTED, T.REPORT_PARTIAL): S.PARTIALLY_FILLED,  # fill before ack
    (S.SUBMITTED, T.REPORT_FILLED): S.FILLED,  # fill before ack (market orders, crossing limits)
    (S.SUBMITTED, T.REPORT_CANCELED): S.CANCELED,  # canceled (by us or a person) before our ack arrived
    (S.SUBMITTED, T.REPORT_EXPIRED): S.EXPIRED,  # IOC/market with nothing to match
    (S.SUBMITTED, T.REPORT_REJECTED): S.REJECTED,
    (S.SUBMITTED, T.FILL_PARTIAL): S.PARTIALLY_FILLED,  # fill before ack: the fill is the ack
    (S.SUBMITTED, T.FILL_COMPLETE): S.FILLED,
    (S.SUBMITTED, T.CANCEL_REQUEST): S.PENDING_CANCEL,  # limit timed out before the ack (cancel by client id)
    # -- OPEN: resting on the book, nothing filled ----------------------------------------------------------
    (S.OPEN, T.ACK): S.OPEN,  # duplicate / late REST ack after the stream's NEW
    (S.OPEN, T.REPORT_NEW): S.OPEN,
    (S.OPEN, T.REPORT_PARTIAL): S.PARTIALLY_FILLED,
    (S.OPEN, T.REPORT_FILLED): S.FILLED,
    (S.OPEN, T.REPORT_CANCELED): S.CANCELED,  # canceled outside the engine (a person in the UI)
    (S.OPEN, T.REPORT_EXPIRED): S.EXPIRED,  # expired by the exchange (e.g. symbol delisted)
    (S.OPEN, T.FILL_PARTIAL): S.PARTIALLY_FILLED,
    (S.OPEN, T.FILL_COMPLETE): S.FILLED,
    (S.OPEN, T.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.OPEN, T.CANCEL_REJECTED): S.OPEN,  # duplicate of an already applied cancel failure
    # -- PARTIALLY_FILLED ---------------------------------------------------------------------------------------
    (S.PARTIALLY_FILLED, T.ACK): S.PARTIALLY_FILLED,  # late ack after the first fills
    (S.PARTIALLY_FILLED, T.REPORT_NEW): S.PARTIALLY_FILLED,  # stale NEW: never go backwards
    (S.PARTIALLY_FILLED, T.REPORT_PARTIAL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, T.REPORT_FILLED): S.FILLED,
    (S.PARTIALLY_FILLED, T.REPORT_CANCELED): S.CANCELED,  # canceled outside the engine, partly filled
    (S.PARTIALLY_FILLED, T.REPORT_EXPIRED): S.EXPIRED,  # IOC remainder expired
    (S.PARTIALLY_FILLED, T.FILL_PARTIAL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, T.FILL_COMPLETE): S.FILLED,
    (S.PARTIALLY_FILLED, T.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, T.CANCEL_REJECTED): S.PARTIALLY_FILLED,  # duplicate cancel failure
    # -- PENDING_CANCEL: our cancel is in flight; fills may still race it --------------------------------------
    (S.PENDING_CANCEL, T.CANCEL_REQUEST): S.PENDING_CANCEL,  # duplicate
    (S.PENDING_CANCEL, T.ACK): S.PENDING_CANCEL,  # late ack
    (S.PENDING_CANCEL, T.REPORT_NEW): S.PENDING_CANCEL,  # stale
    (S.PENDING_CANCEL, T.REPORT_PARTIAL): S.PENDING_CANCEL,  # a fill raced the cancel; cancel still pending
    (S.PENDING_CANCEL, T.FILL_PARTIAL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, T.FILL_COMPLETE): S.FILLED,  # the cancel lost the race: filled first
    (S.PENDING_CANCEL, T.REPORT_FILLED): S.FILLED,  # cancel rejected because already filled
    (S.PENDING_CANCEL, T.REPORT_CANCELED): S.CANCELED,  # cancel confirmed
    (S.PENDING_CANCEL, T.REPORT_EXPIRED): S.EXPIRED,  # expired while we were canceling
    (S.PENDING_CANCEL, T.CANCEL_REJECTED): _REVERT,  # cancel failed: the order is still live
    # -- CANCELED / EXPIRED: terminal, except for the documented late fill -------------------------------------
    (S.CANCELED, T.REPORT_CANCELED): S.CANCELED,  # duplicate
    (S.CANCELED, T.REPORT_NEW): S.CANCELED,  # stale
    (S.CANCELED, T.REPORT_PARTIAL): S.CANCELED,  # stale: the trade happened before the cancel
    (S.CANCELED, T.FILL_PARTIAL): S.CANCELED,  # late fill: accounted, the order stays canceled
    (S.CANCELED, T.FILL_COMPLETE): S.FILLED,  # late fill completes it: it was filled, not canceled
    (S.CANCELED, T.REPORT_FILLED): S.FILLED,  # reconciliation says filled: the exchange is the truth
    (S.CANCELED, T.ACK): S.CANCELED,  # late ack
    (S.CANCELED, T.CANCEL_REJECTED): S.CANCELED,  # our cancel lost to someone else's; same end
    (S.EXPIRED, T.REPORT_EXPIRED): S.EXPIRED,
    (S.EXPIRED, T.REPORT_NEW): S.EXPIRED,
    (S.EXPIRED, T.REPORT_PARTIAL): S.EXPIRED,
    (S.EXPIRED, T.FILL_PARTIAL): S.EXPIRED,  # an IOC's trade report arriving after its EXPIRED
    (S.EXPIRED, T.FILL_COMPLETE): S.FILLED,
    (S.EXPIRED, T.REPORT_FILLED): S.FILLED,
    (S.EXPIRED, T.ACK): S.EXPIRED,
    (S.EXPIRED, T.CANCEL_REJECTED): S.EXPIRED,
    # -- FILLED: final; duplicates and stale reports are absorbed silently ------------------------------------
    **{(S.FILLED, t): S.FILLED for t in (T.ACK, T.REPORT_NEW, T.REPORT_PARTIAL, T.REPORT_FILLED)},
    (S.FILLED, T.FILL_PARTIAL): S.FILLED,  # a REST-fetched fill arriving after the status said FILLED
    (S.FILLED, T.FILL_COMPLETE): S.FILLED,
    (S.FILLED, T.CANCEL_REJECTED): S.FILLED,  # -2011: our cancel came too late
    # -- REJECTED: final ----------------------------------------------------------------------------------------
    (S.REJECTED, T.CREATE_REJECTED): S.REJECTED,  # duplicate
    (S.REJECTED, T.REPORT_REJECTED): S.REJECTED,
}
del S, T

_REPORT_TRIGGER: Final = {
    ExchangeOrderStatus.NEW: Trigger.REPORT_NEW,
    ExchangeOrderStatus.PENDING_NEW: Trigger.REPORT_NEW,
    ExchangeOrderStatus.PARTIALLY_FILLED: Trigger.REPORT_PARTIAL,
    ExchangeOrderStatus.FILLED: Trigger.REPORT_FILLED,
    ExchangeOrderStatus.CANCELED: Trigger.REPORT_CANCELED,
    ExchangeOrderStatus.REJECTED: Trigger.REPORT_REJECTED,
    ExchangeOrderStatus.EXPIRED: Trigger.REPORT_EXPIRED,
    ExchangeOrderStatus.EXPIRED_IN_MATCH: Trigger.REPORT_EXPIRED,
}


@dataclass(frozen=True, slots=True)
class OrderState:
    """Everything known about one exchange order. Build with `OrderState.new`, change with `apply`."""

    client_order_id: ClientOrderId
    symbol: Symbol
    side: Side
    amount: Decimal
    status: OrderStatus = OrderStatus.PENDING_SUBMIT
    exchange_order_id: ExchangeOrderId | None = None
    fills: tuple[FillEvent, ...] = ()
    """Applied fills, sorted by trade id (so the state does not depend on arrival order)."""
    filled: Decimal = Decimal(0)
    quote_filled: Decimal = Decimal(0)
    fees: tuple[tuple[str, Decimal], ...] = ()
    """(asset, total commission) sorted by asset."""
    exchange_cum_qty: Decimal = Decimal(0)
    """The highest cumulative quantity the exchange reported (`z` / executedQty); never decreases."""
    exchange_cum_quote: Decimal = Decimal(0)

    @classmethod
    def new(cls, client_order_id: ClientOrderId, symbol: Symbol, side: Side, amount: Decimal) -> OrderState:
        """A fresh order whose intent has just been written (PENDING_SUBMIT)."""
        if amount <= 0:
            raise ValueError(f"amount must be > 0, got {amount}")
        return cls(client_order_id, symbol, side, amount)

    @property
    def trade_ids(self) -> frozenset[TradeId]:
        """Trade ids already applied (the dedupe key within this order)."""
        return frozenset(f.trade_id for f in self.fills)

    def has_trade(self, trade_id: TradeId) -> bool:
        """True when the fill of `trade_id` is already applied.

        A binary search of the sorted fills, not a set kept in the state: each fill would copy the whole set
        into the next state, so an order's n-th fill cost O(n) and a 4,000-fill order's fills 60% more each.
        """
        fills = self.fills
        if not fills or trade_id > fills[-1].trade_id:
            return False  # the usual case: trades arrive in id order
        at = bisect_left(fills, trade_id, key=_trade_id_of)
        return at < len(fills) and fills[at].trade_id == trade_id

    @property
    def remaining(self) -> Decimal:
        """Amount not yet known to be filled (from the larger of local fills and the exchange's count)."""
        return self.amount - max(self.filled, self.exchange_cum_qty)

    @property
    def missing_qty(self) -> Decimal:
        """Quantity the exchange reports filled but whose fills are not known here yet."""
        return max(Decimal(0), self.exchange_cum_qty - self.filled)

    @property
    def average_price(self) -> Decimal | None:
        """Quote filled / base filled over the known fills."""
        return self.quote_filled / self.filled if self.filled > 0 else None


_trade_id_of = attrgetter("trade_id")
_STATE_FIELDS = tuple(f.name for f in fields(OrderState))
_FIELD_SET = frozenset(_STATE_FIELDS)
_new_state = object.__new__
_set_field = object.__setattr__


def _evolve(state: OrderState, **changes: object) -> OrderState:
    """`dataclasses.replace` for `OrderState` at half the cost (it runs several times per order).

    The fields are copied as they are: every value was validated when it first entered a state.
    """
    if not changes.keys() <= _FIELD_SET:
        raise TypeError(f"OrderState has no field(s) {sorted(changes.keys() - _FIELD_SET)}")
    new = _new_state(OrderState)
    for name in _STATE_FIELDS:
        _set_field(new, name, changes[name] if name in changes else getattr(state, name))
    return new


def _transition(
    state: OrderState,
    trigger: Trigger,
    event: OrderEvent,
    effects: list[OrderEffect],
    changes: dict[str, object] | None = None,
) -> OrderState:
    """The state after `trigger`, with `changes` (what the event set besides the status) applied too.

    One copy of the state per event, whatever it changes: nothing outside `apply` sees the states between.
    """
    target = TRANSITIONS.get((state.status, trigger))
    if target is None:
        logger.warning(
            "ignored invalid order transition {status} + {trigger} ({event}) for {cid}",
            status=state.status.value,
            trigger=trigger.name,
            event=type(event).__name__,
            cid=state.client_order_id,
        )
        if state.status is OrderStatus.REJECTED and trigger is not Trigger.SUBMIT:
            effects.append(Anomaly(state.client_order_id, f"{trigger.name} after the order was rejected"))
        return _evolve(state, **changes) if changes else state
    if target == _REVERT:
        assert not changes  # a failed cancel changes nothing but the status
        new = OrderStatus.PARTIALLY_FILLED if state.filled > 0 or state.exchange_cum_qty > 0 else OrderStatus.OPEN
    else:
        assert isinstance(target, OrderStatus)
        new = target
    if new is state.status:
        return _evolve(state, **changes) if changes else state
    effects.append(StatusChanged(state.client_order_id, state.status, new))
    return _evolve(state, status=new, **changes) if changes else _evolve(state, status=new)


def _apply_fill(state: OrderState, fill: FillEvent, effects: list[OrderEffect]) -> OrderState:
    if state.has_trade(fill.trade_id):
        return state  # the same trade from the stream and from REST, or a duplicated report
    if state.status is OrderStatus.REJECTED:
        effects.append(Anomaly(state.client_order_id, f"fill {fill.trade_id} on a rejected order"))
        logger.error("fill {tid} on rejected order {cid} ignored", tid=fill.trade_id, cid=state.client_order_id)
        return state
    if fill.price <= 0 or fill.quote_quantity < 0 or fill.commission < 0:
        # Impossible numbers (a REST row or a frame past its parser): applied, the fill could not be stored, and
        # the pair actor holding it failed again at every restart.
        effects.append(Anomaly(state.client_order_id, f"fill {fill.trade_id} has an impossible price or amount"))
        logger.error("fill {tid} of {cid} with price {p} ignored", tid=fill.trade_id, cid=state.client_order_id,
                     p=fill.price)  # fmt: skip
        return state
    if fill.quantity <= 0 or state.filled + fill.quantity > state.amount:
        effects.append(Anomaly(state.client_order_id, f"fill {fill.trade_id} would over-fill the order"))
        logger.error("fill {tid} of {qty} would over-fill {cid}; ignored", tid=fill.trade_id, qty=fill.quantity,
                     cid=state.client_order_id)  # fmt: skip
        return state
    fees = dict(state.fees)
    if fill.commission > 0:
        fees[fill.commission_asset] = fees.get(fill.commission_asset, Decimal(0)) + fill.commission
    if not state.fills or fill.trade_id > state.fills[-1].trade_id:
        fills = (*state.fills, fill)  # the usual case: trades arrive in id order
    else:
        fills = tuple(sorted((*state.fills, fill), key=lambda f: f.trade_id))
    filled = state.filled + fill.quantity
    changes: dict[str, object] = {
        "fills": fills,
        "filled": filled,
        "quote_filled": state.quote_filled + fill.quote_quantity,
        "fees": tuple(sorted(fees.items())),
        "exchange_order_id": state.exchange_order_id if state.exchange_order_id is not None else fill.order_id,
    }
    effects.append(FillApplied(state.client_order_id, fill))
    trigger = Trigger.FILL_COMPLETE if filled >= state.amount else Trigger.FILL_PARTIAL
    return _transition(state, trigger, fill, effects, changes)


def _apply_status(state: OrderState, event: ExchangeStatus, effects: list[OrderEffect]) -> OrderState:
    if event.cum_qty > state.amount:
        effects.append(Anomaly(state.client_order_id, f"exchange reports {event.cum_qty} filled of {state.amount}"))
        return state
    changes: dict[str, object] = {}
    order_id = state.exchange_order_id
    if order_id is None and event.order_id is not None:
        order_id = changes["exchange_order_id"] = event.order_id
    if event.cum_qty > state.exchange_cum_qty:
        changes["exchange_cum_qty"] = event.cum_qty
        changes["exchange_cum_quote"] = max(state.exchange_cum_quote, event.cum_quote)
        if event.cum_qty > state.filled:
            # `missing_qty` of the new state
            effects.append(FetchMissingFills(state.client_order_id, order_id, event.cum_qty - state.filled))
    if event.status is ExchangeOrderStatus.PENDING_CANCEL:
        # Binance does not use it; nothing to learn beyond the quantities
        return _evolve(state, **changes) if changes else state
    return _transition(state, _REPORT_TRIGGER[event.status], event, effects, changes)


def apply(state: OrderState, event: OrderEvent) -> tuple[OrderState, tuple[OrderEffect, ...]]:
    """Apply one event; return the new state and the effects for the caller. Never raises.

    Applying the same event twice changes nothing the second time.
    """
    effects: list[OrderEffect] = []
    match event:
        case FillEvent():
            state = _apply_fill(state, event, effects)
        case ExchangeStatus():
            state = _apply_status(state, event, effects)
        case Acked(order_id=order_id):
            known = state.exchange_order_id is not None
            state = _transition(state, Trigger.ACK, event, effects, None if known else {"exchange_order_id": order_id})
        case CancelRejected(order_gone=gone):
            before = state.status
            state = _transition(state, Trigger.CANCEL_REJECTED, event, effects)
            if gone and before is OrderStatus.PENDING_CANCEL:
                effects.append(FetchOrderStatus(state.client_order_id))  # filled or canceled: find out which
        case Submitted():
            state = _transition(state, Trigger.SUBMIT, event, effects)
        case SubmitOutcomeUnknown():
            state = _transition(state, Trigger.OUTCOME_UNKNOWN, event, effects)
        case NotCreated():
            state = _transition(state, Trigger.NOT_CREATED, event, effects)
        case CreateRejected():
            state = _transition(state, Trigger.CREATE_REJECTED, event, effects)
        case CancelRequested():
            state = _transition(state, Trigger.CANCEL_REQUEST, event, effects)
    return state, tuple(effects)


def replay(state: OrderState, events: tuple[OrderEvent, ...] | list[OrderEvent]) -> OrderState:
    """Apply `events` in order (e.g. an event log after a restart) and return the final state."""
    for event in events:
        state, _ = apply(state, event)
    return state
