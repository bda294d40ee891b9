"""What the Engine API hands back: accepted orders, refusals with a machine-readable reason, and events."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from engine.domain import ClientOrderId, Fill, Order, Pair, RequestId, Trade

__all__ = [
    "Accepted",
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
    """The risk manager said no (notional too large, too many open orders, …)."""
    WALLET_BELOW_MINIMUM = "wallet_below_minimum"
    """The wallet is worth less than `execution.min_wallet_btc`."""
    FILTER_FAILURE = "filter_failure"
    """The order breaks an exchange filter (LOT_SIZE, PRICE_FILTER, NOTIONAL, …); checked before sending."""
    CONFLICT = "conflict"
    """Another request on this pair is in flight on the same side, or active on the opposite side."""
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
    """The exchange accepted the order (`order` is its state at the ack).

    `duplicate` is True when the idempotency key had been seen before: the existing order is returned and
    nothing new was sent.
    """

    order: Order
    duplicate: bool = False

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
        self.request_id = request_id


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
