"""What the Engine API hands back: accepted orders, refusals with a machine-readable reason, what a cancel did,
and events."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from engine.domain import ClientOrderId, Fill, Order, Pair, RequestId, Trade, TradeStatus

__all__ = [
    "Accepted",
    "CancelOutcome",
    "CancelStatus",
    "Cancellation",
    "EngineEvent",
    "EngineListener",
    "EventKind",
    "PlaceOutcome",
    "Placement",
    "Refusal",
    "RefusalReason",
]


class RefusalReason(StrEnum):
    """Why a request was not executed. Stable strings: scripts and the control API match on them."""

    RISK_LIMIT = "risk_limit"
    """The risk manager said no (notional too large, too many open orders, …). `details` (exact plain decimals)
    say what it saw: `pair`, `quote`, `amount`, `open_orders` (the pair's), and when the request could be valued
    `reference_price` and `notional` (amount × reference price, in `quote`); with the default risk manager also
    the bounds, `max_order_notional` (when set for `quote`) and `max_open_orders_per_pair` (when set). A
    refusing risk manager's other reasons (`filter_failure`, `halted`, …) carry the same details. A slippage
    refusal (the market beyond `execution.max_slippage_pct` from the reference when a market request's order or a
    fallback would go) carries instead `reference_price`, `bound`, `max_slippage`, `market_price` and `slippage`
    (a fraction; positive is worse for the side), and `client_order_id` when an order was created."""
    WALLET_BELOW_MINIMUM = "wallet_below_minimum"
    """The wallet is worth less than `execution.min_wallet_btc` (`details`: `min_wallet_btc`, and `wallet_btc`
    exact — the message shows it cut to 8 places), or its value is not known yet."""
    FILTER_FAILURE = "filter_failure"
    """The order breaks an exchange filter (LOT_SIZE, MARKET_LOT_SIZE, PRICE_FILTER, PERCENT_PRICE(_BY_SIDE),
    NOTIONAL, MIN_NOTIONAL), or the symbol is not trading (SYMBOL_STATUS); checked before sending. The message
    names the filter and gives the offending value and the bound or step. `details` (exact plain decimals) say the
    same for code: `filter`; `field` (`amount`, `price`, `notional`; `status` for SYMBOL_STATUS); `value`, as the
    engine would have sent it (the amount rounded down to the lot step, the price to the tick); and the bounds that
    apply — `min`, `max`, `step` (LOT_SIZE, MARKET_LOT_SIZE); `min`, `max`, `tick` (PRICE_FILTER); `min`, `max`,
    `multiplier_up`, `multiplier_down`, `reference_price` (PERCENT_PRICE*); `min`, `max`, `amount`, `price`
    (notional = amount × price) and `step`, the amount's lot step (NOTIONAL, MIN_NOTIONAL). A bound the exchange
    does not enforce (0) is left out. A market request too small to send adds `remainder`; `client_order_id` names
    the request's order when one was created. A risk manager's own `filter_failure` carries the risk details
    instead (see `RISK_LIMIT`)."""
    CONFLICT = "conflict"
    """The pair, or the idempotency key, is busy. Under `execution.conflict_policy = "refuse"` (the default) a pair
    executes one request at a time: while one is still executing (waiting for its ack, resting, falling back)
    every new request of the pair is refused, whatever its side and price — an acknowledged resting buy blocks
    a second buy at another price too. `details["request_id"]` names the one in the way: wait for its `done`
    event, cancel it, or set `execution.conflict_policy = "queue"` to queue new requests behind it instead. Under
    `"parallel"` requests of the same side run at once and only one on the opposite side is refused
    (`details["cause"] = "opposite_side"`: the engine never trades against its own orders;
    `details["client_order_id"]` when the one in the way is an open order whose request is over). Also:
    the idempotency key was used for another request (`details["request_id"]`: that one), its request is still
    being placed, or the key cannot be checked now (`details["retry"]`)."""
    HALTED = "halted"
    """The engine is in its safe halted state (restart budget exhausted, IP ban, database spool full)."""
    KILL_SWITCH = "kill_switch"
    """Intake paused by the operator (`risk.kill_switch` or the control API)."""
    NOT_WHITELISTED = "not_whitelisted"
    """The pair is not in `exchange.pair_whitelist`."""
    INVALID_REQUEST = "invalid_request"
    """The request itself is malformed (bad amount, unknown pair format, …)."""
    REJECTED = "rejected"
    """The exchange definitely refused the order (insufficient balance, filter, …); see the message."""
    SHUTTING_DOWN = "shutting_down"
    """The engine is stopping and takes no new requests."""
    CANCELED = "canceled"
    """The request was canceled (`cancel_order`, or the shutdown's cancel) before the exchange accepted an order
    of it: queued behind another request of its pair, or its create canceled before the ack."""
    OUTCOME_UNKNOWN = "outcome_unknown"
    """The exchange never confirmed the order despite every lookup; it may exist and is being reconciled."""


@dataclass(frozen=True)
class Refusal:
    """A request that was not (or definitely could not be) executed, and why."""

    reason: RefusalReason
    message: str
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        """Always False (lets callers branch without isinstance)."""
        return False


@dataclass(frozen=True)
class Accepted:
    """The exchange accepted the request's order: `order`, the first of its orders the exchange accepted (its
    primary; the fallback when the primary was rejected), in its state at the ack.

    `duplicate` is True when the idempotency key had been seen before on the pair: nothing new was sent, and the
    answer says what the original request did, read when the duplicate was answered: `order` in its state now
    (a limit that timed out reads `canceled`, whatever its fallback filled), `trade` and `latest` — read those,
    not `order`, to learn the request's outcome. Its id is `order.request_id` (and the placement's `request_id`).
    """

    order: Order
    duplicate: bool = False
    trade: Trade | None = None
    """A duplicate's request once it has finished: its outcome (`status`, `filled`, `average_price`, `fees`,
    `remainder`, `note`), as its `done` event told it. None while the request is still executing — and on a
    first acceptance, whose trade comes with its `done` event."""
    latest: Order | None = None
    """A duplicate's request's most recent order not rejected by the exchange, in its state now: the one carrying
    its execution (or the last that did) — its fallback once one was sent (still being placed, resting, or
    filled), `order` itself when it has no other. None on a first acceptance (`order` is then the latest)."""

    @property
    def accepted(self) -> bool:
        """Always True."""
        return True


PlaceOutcome = Accepted | Refusal


class Placement(concurrent.futures.Future[PlaceOutcome]):
    """What `Engine.place_order` returns: the future of its outcome, and the id the request was given, so it can
    be canceled (`Engine.cancel_order`) before the exchange has answered — queued behind another request of its
    pair, say, or waiting out a rate limit."""

    def __init__(self, request_id: RequestId) -> None:
        super().__init__()
        self._request_id = request_id

    @property
    def request_id(self) -> RequestId:
        """The request's id: what `Engine.cancel_order` and the events name it by.

        Drawn by `place_order` for a new request. A replayed idempotency key starts no request: once the placement
        is answered `Accepted(duplicate=True)`, this is the original request's id (`order.request_id`), so a
        cancel reaches the request that executes. Until that answer, it is the id drawn for this call, which
        names a request only if the key turns out to be new (a cancel with it meanwhile finds nothing:
        `unknown_request`) — read it after `result()` when the key may be a replay.
        """
        if self.done() and self.exception() is None:
            outcome = self.result()
            if isinstance(outcome, Accepted):
                return outcome.order.request_id
        return self._request_id


class CancelStatus(StrEnum):
    """What `Engine.cancel_order` did. Stable strings: scripts and the control API match on them."""

    CANCEL_SENT = "cancel_sent"
    """The cancel of the request's resting order(s) (`client_order_ids`) is queued to the exchange (or was already,
    by an earlier cancel); no fallback follows. An order whose create the exchange has not acknowledged yet is
    canceled at its ack (`at_ack`). The exchange's confirmation comes as order events: `canceled`, then `done`."""
    CANCEL_AT_ACK = "cancel_at_ack"
    """The request's order (`at_ack`) has not been acknowledged by the exchange yet: its cancel goes out at the
    ack (a cancel overtaking its create would find nothing, and the order would rest); no fallback follows."""
    WITHDRAWN = "withdrawn"
    """The request had nothing at the exchange (queued behind another request of its pair, or between two of its
    orders): it ended here and now, nothing more is sent. A queued request's placement answers `canceled`."""
    ALREADY_DONE = "already_done"
    """The request had finished before the cancel (`final_status`: filled, partial, canceled or failed); nothing
    was sent."""
    UNKNOWN_REQUEST = "unknown_request"
    """No such request on this pair, running or stored (a typo, another pair's request, or a placement that was
    refused: a refused request is not kept); nothing was sent."""
    NOT_WHITELISTED = "not_whitelisted"
    """The pair is not in `exchange.pair_whitelist`: nothing of it can be canceled."""
    SHUTTING_DOWN = "shutting_down"
    """The engine is stopped (or stopping, for a halted pair's cancel): nothing was sent."""
    UNAVAILABLE = "unavailable"
    """Nothing could be done or found now; retry (`details["retry"]`). `details["cause"]` says why: `restarting`
    (the pair's actor is being restarted, or failed on the cancel), `database` (the request is not in memory and
    the database did not answer), `timeout` (an actor did not answer in time), `engine` (an actor it needed is
    gone)."""


_CANCELING = frozenset({CancelStatus.CANCEL_SENT, CancelStatus.CANCEL_AT_ACK, CancelStatus.WITHDRAWN})


@dataclass(frozen=True)
class CancelOutcome:
    """What `Engine.cancel_order` did for one request (`status`, and `message` in words)."""

    status: CancelStatus
    pair: Pair
    request_id: RequestId
    message: str
    client_order_ids: tuple[ClientOrderId, ...] = ()
    """`cancel_sent`: the orders whose cancel is queued to the exchange (or already under way)."""
    at_ack: tuple[ClientOrderId, ...] = ()
    """Orders whose create the exchange has not acknowledged yet: canceled at their ack."""
    final_status: TradeStatus | None = None
    """`already_done` (and `withdrawn`, when the request had started): how the request ended."""
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def canceling(self) -> bool:
        """True when this cancel stops the request (`cancel_sent`, `cancel_at_ack`, `withdrawn`): no fallback
        follows. Lets callers branch without matching every status."""
        return self.status in _CANCELING


class Cancellation(concurrent.futures.Future[CancelOutcome]):
    """What `Engine.cancel_order` returns: the future of its `CancelOutcome`, with the `pair` and `request_id` it
    is about. Like a `Placement`, it cannot be canceled itself (`cancel()` says False)."""

    def __init__(self, pair: Pair, request_id: RequestId) -> None:
        super().__init__()
        self.pair = pair
        self.request_id = request_id
        self.set_running_or_notify_cancel()


class EventKind(StrEnum):
    """What happened to an order or request."""

    ACCEPTED = "accepted"
    FILL = "fill"
    FALLBACK = "fallback"
    CANCELED = "canceled"
    DONE = "done"
    ERROR = "error"
    EXTERNAL = "external"


@dataclass(frozen=True)
class EngineEvent:
    """One order event for listeners (`Engine.subscribe`)."""

    kind: EventKind
    pair: Pair
    time: datetime
    request_id: RequestId | None = None
    client_order_id: ClientOrderId | None = None
    order: Order | None = None
    fill: Fill | None = None
    trade: Trade | None = None
    message: str = ""


class EngineListener(Protocol):
    """Receives order events. Called from an engine thread: return quickly, never block."""

    def __call__(self, event: EngineEvent) -> None:
        """Handle one event."""
        ...
