"""Book-keeping records of the pair book: one `Leg` per exchange order, one `Execution` per request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

from engine.domain import (
    ClientOrderId,
    Order,
    OrderRequest,
    OrderRole,
    OrderStatus,
    OrderType,
    Pair,
    Priority,
    RequestId,
    RequestRecord,
    TimeInForce,
    Trade,
    TradeStatus,
    plain_decimal,
    storable_text,
)
from engine.exchange import UnknownOutcomeResolver
from engine.execution import ExecutionPlan, ExecutionResult
from engine.orders import OrderState

__all__ = [
    "PLAN_TIMER_PREFIX",
    "RECONCILED",
    "Execution",
    "Leg",
    "Stage",
    "ms_to_dt",
    "order_of",
    "plan_key",
    "trade_of",
]

RECONCILED = frozenset({OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL})
"""The statuses of a live order reconciliation brings up to date (its open-orders scan, else its own lookup)."""


PLAN_TIMER_PREFIX = "plan:"
"""How the timer key of every request's plan starts (`plan_key`)."""


def plan_key(request_id: RequestId) -> str:
    """The timer key of a request's plan."""
    return f"{PLAN_TIMER_PREFIX}{request_id}"


@lru_cache(maxsize=1024)
def ms_to_dt(ms: int) -> datetime:
    """Epoch milliseconds → aware UTC datetime.

    Cached: one message stamps the same instant (and each order its creation time) on several records, and
    `fromtimestamp` with a zone costs ~10 times a cache hit. Datetimes are immutable, so sharing is safe.
    """
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class Stage(StrEnum):
    """Where one request stands in the book (the plan's own phases say where the execution stands)."""

    QUEUED = "queued"
    """Waiting behind a conflicting request (conflict_policy = queue); no plan yet."""
    WORKING = "working"
    """The execution plan drives it: orders are placed, rest, are canceled or fall back."""
    SETTLING = "settling"
    """The plan has its result; fills the exchange counted are still being fetched before the summary."""
    DONE = "done"


@dataclass
class Leg:
    """One exchange order of a request and everything needed to drive it."""

    state: OrderState
    request_id: RequestId
    pair: Pair
    role: OrderRole
    order_type: OrderType
    time_in_force: TimeInForce
    price: Decimal | None
    priority: Priority
    created_ms: int
    updated_ms: int
    exchange: str
    parent: ClientOrderId | None = None
    resolver: UnknownOutcomeResolver | None = None
    resends: int = 0
    fill_fetches: int = 0
    missed_lookups: int = 0
    """Status lookups of this acknowledged order that found nothing since one last found it (`_orders._not_found`)."""
    first_miss_ms: int | None = None
    """When the first of those found nothing."""
    last_miss_ms: int = 0
    acked: bool = False
    acked_ms: int = 0
    """When the engine learned the exchange had the order (0: before this run, or a stranger's): a reconciliation
    scan sent before then may not list it (`on_open_orders`)."""
    by_order_id: bool = False
    """Looked up and canceled by the exchange's order id: the exchange may know it by another client order id (it
    was amended outside the engine, or a lookup by ours found nothing)."""
    exchange_qty: Decimal | None = None
    """The order's quantity at the exchange once an amend outside the engine reduced it (None: as placed)."""
    exchange_cid: str | None = None
    """The client order id the exchange knows the order by, once an amend outside the engine gave it another."""
    cancel_wanted: bool = False
    """The plan asked to cancel before the exchange acknowledged the order: cancel it at the ack."""
    told_closed: bool = False
    """The plan has heard how this leg ended (`LegClosed` or `LegFailed`)."""
    prevented: bool = False
    """The exchange expired the order in a match with another order of this account (EXPIRED_IN_MATCH)."""
    summed_trade: Trade | None = None
    """For an order of a request already summed up (restored or looked up after it left memory): the stored
    trade, to which a later fill of this order is added."""
    resync_left: int = 0
    """Lookups left for an order restored after a restart, whose exchange state is read again: until one
    answers, its request is not summed up (the exchange may have executed more than was stored)."""
    resync_by_scan: bool = False
    """A restored live order waiting for the open-orders scan's word (no lookup of its own sent yet)."""
    lookup_pending: bool = False
    """A scan left it to a lookup of its own, not answered yet: the next scan does not ask again."""
    slippage_capped: bool = False
    """The fallback step sent this order capped at the slippage bound (stored with the order)."""
    snapshot: tuple[OrderState, int, Order] | None = field(default=None, repr=False, compare=False)
    """`order_of`'s last result with the state and time it was built from (one message asks several times)."""

    @property
    def cid(self) -> ClientOrderId:
        """The client order id."""
        return self.state.client_order_id

    @property
    def order_ref(self) -> int | None:
        """The exchange order id to look it up and cancel it by (`by_order_id`), else None: by our client id."""
        return self.state.exchange_order_id if self.by_order_id else None

    @property
    def terminal(self) -> bool:
        """True once the exchange can no longer change this order."""
        return self.state.status.is_terminal


@dataclass
class Execution:
    """One request: its plan, its legs (primary first) and what the trade summary will say."""

    request: OrderRequest
    created_ms: int
    plan: ExecutionPlan | None = None
    stage: Stage = Stage.WORKING
    legs: list[ClientOrderId] = field(default_factory=list)
    resolved: bool = False
    """The caller's future has its answer (accepted at the primary's ack, or a refusal)."""
    deadline_ms: int | None = None
    """The plan's timer as scheduled at the actor (to re-arm or drop it when the plan's deadline moves)."""
    story: list[str] = field(default_factory=list)
    """What happened, in words, for the trade's note (limit timeout, fallback market, …)."""
    result: ExecutionResult | None = None
    canceled: RequestRecord | None = None
    """The request as stored when its caller or the shutdown canceled it (`RequestRecord.canceled` set); None until
    then."""
    replays: list[OrderRequest] = field(default_factory=list)
    """The same key sent again before any order of this request was accepted: answered at that ack, or at its end."""


def order_of(leg: Leg) -> Order:
    """The domain `Order` snapshot of a leg (what is stored and reported)."""
    state = leg.state
    cached = leg.snapshot
    # Only the state (replaced, never mutated) and `updated_ms` change over a leg's life (an amend drops the
    # snapshot: `OrderCore._amended`); a new state whose
    # snapshot fields are the very same objects (the exchange's cumulative count moved, say) snapshots alike.
    if cached is not None and cached[1] == leg.updated_ms and _same_snapshot(cached[0], state):
        return cached[2]
    fields = {
        "client_order_id": state.client_order_id,
        "exchange_order_id": state.exchange_order_id,
        "exchange": leg.exchange,
        "request_id": leg.request_id,
        "pair": leg.pair,
        "side": state.side,
        "order_type": leg.order_type,
        "time_in_force": leg.time_in_force,
        "role": leg.role,
        "parent_client_order_id": leg.parent,
        "status": state.status,
        "price": leg.price,
        "amount": state.amount,
        "filled": state.filled,
        "remaining": state.amount - state.filled,
        "quote_filled": state.quote_filled,
        "average_price": state.average_price,
        "fees": dict(state.fees),
        "created_at": ms_to_dt(leg.created_ms),
        "updated_at": ms_to_dt(max(leg.updated_ms, leg.created_ms)),
        "last_trade_id": state.fills[-1].trade_id if state.fills else None,
        "slippage_capped": leg.slippage_capped,
        "exchange_client_order_id": leg.exchange_cid,
        "amended_amount": leg.exchange_qty,
    }
    # The state machine keeps filled within (0, amount]; only fill values from the wire (price, commission)
    # can be off, and a fill is validated (`Fill`) after it is applied. Anything doubtful is validated here
    # too, so it fails exactly as before.
    order = Order.trusted(**fields) if _sane(state.filled, state.quote_filled, state.fees) else Order(**fields)
    leg.snapshot = (state, leg.updated_ms, order)
    return order


def _same_snapshot(old: OrderState, new: OrderState) -> bool:
    """True when `order_of` would build an equal `Order` from either state (identity: evolved states share)."""
    return old is new or (
        old.status is new.status
        and old.exchange_order_id == new.exchange_order_id
        and old.fills is new.fills
        and old.filled is new.filled
        and old.quote_filled is new.quote_filled
        and old.fees is new.fees
        and old.amount is new.amount
        and old.side is new.side
        and old.client_order_id is new.client_order_id
    )


def _sane(filled: Decimal, quote: Decimal, fees: tuple[tuple[str, Decimal], ...]) -> bool:
    """True when the fill-derived amounts are what validation would accept (finite, fees ≥ 0, average > 0)."""
    if not (filled.is_finite() and quote.is_finite() and filled >= 0 and quote >= 0):
        return False
    if filled > 0 and quote == 0:
        return False  # an average price of 0
    return all(fee.is_finite() and fee >= 0 for _, fee in fees)


def filled_status(filled: Decimal, requested: Decimal, floor_qty: Callable[[Decimal], Decimal]) -> TradeStatus:
    """A trade's status from what filled: FILLED once what is left is below the lot step (`floor_qty` of it is 0: no
    order could carry it), PARTIAL with some filled, else CANCELED (as `engine.execution`'s result says)."""
    if filled > 0 and (filled >= requested or floor_qty(requested - filled) <= 0):
        return TradeStatus.FILLED
    return TradeStatus.PARTIAL if filled > 0 else TradeStatus.CANCELED


def trade_of(
    execution: Execution,
    result: ExecutionResult,
    legs: list[Leg],
    now_ms: int,
    floor_qty: Callable[[Decimal], Decimal],
) -> Trade:
    """The stored `Trade` of a finished request: the plan's verdict, the legs' stored fills.

    Quantities, prices and fees are summed from the fills the book stored (so the trade always equals its
    fill rows); status, dust and the reason come from the plan's result. `floor_qty`: the pair's lot step rounding
    (`SymbolRules.floor_qty`), for the status when the stored fills differ from the plan's count.
    """
    request = execution.request
    filled = sum((leg.state.filled for leg in legs), Decimal(0))
    quote = sum((leg.state.quote_filled for leg in legs), Decimal(0))
    fees: dict[str, Decimal] = {}
    for leg in legs:
        for asset, amount in leg.state.fees:
            fees[asset] = fees.get(asset, Decimal(0)) + amount
    status = result.status
    if filled != result.filled:
        # The stored fills differ from the plan's count: fills the exchange counted could not be fetched
        # (alerted), or fills of an order restored after a restart arrived once the plan had ended. The
        # status says what is stored.
        status = filled_status(filled, request.amount, floor_qty)
    note = "; ".join(execution.story)
    if result.detail and result.detail != "filled" and result.detail not in execution.story:
        note = f"{note}; {result.reason.value}: {result.detail}" if note else f"{result.reason.value}: {result.detail}"
    if result.dust and request.amount > filled and "dust" not in note:
        # A filled trade with dust left (the lot step cut the request): said in words, not only by the flag.
        tail = f"dust: {plain_decimal(request.amount - filled)} left, below the lot step or the minimum notional"
        note = f"{note}; {tail}" if note else tail
    fields = {
        "request_id": request.request_id,
        "pair": request.pair,
        "side": request.side,
        "requested": request.amount,
        "filled": filled,
        "average_price": quote / filled if filled > 0 else None,
        "fees": fees,
        "status": status,
        "strategy": request.context.strategy,
        "timeframe": request.context.timeframe,
        "indicators": request.context.indicators(),
        "created_at": ms_to_dt(execution.created_ms),
        # Never before its creation, whatever the host clock did: a trade that fails validation crashed its pair
        # actor at every start, until the clock caught up (a step back of a second while a market order is out).
        "closed_at": ms_to_dt(max(now_ms, execution.created_ms)),
        "remainder": max(Decimal(0), request.amount - filled),  # more than asked: an anomaly, never a crash
        "dust": result.dust,
        "note": storable_text(note),  # it quotes the exchange; `Trade.trusted` skips the field's own cleaning
    }
    # The request was validated at intake and the sums come from the legs' states (see `order_of`).
    if filled <= request.amount and _sane(filled, quote, tuple(fees.items())):
        return Trade.trusted(**fields)
    return Trade(**fields)
