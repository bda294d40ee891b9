"""What the pure pair book asks its actor to do. The actor carries these out in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.api import EngineEvent, PlaceOutcome
from engine.domain import ClientOrderId, ErrorRecord, Fill, Order, RequestId, RequestRecord, Trade
from engine.gateway import GatewayRequest

if TYPE_CHECKING:
    from engine.pair._recover import Sighting

__all__ = [
    "Alert",
    "CancelAhead",
    "Command",
    "Emit",
    "Persist",
    "Resolve",
    "Schedule",
    "Send",
    "Unschedule",
    "Withdraw",
    "WriteAhead",
]


@dataclass(frozen=True)
class Send:
    """Queue this request at the gateway; its result comes back to `PairBook.on_result`."""

    request: GatewayRequest


@dataclass(frozen=True)
class Withdraw:
    """The caller canceled this create's request before its ack: if it has not left the gateway, it never does."""

    client_order_id: ClientOrderId


@dataclass(frozen=True)
class WriteAhead:
    """Persist `order` (the intent) and, only once it is durable, send `send` (its create). Nothing waits: if
    the intent cannot be stored, `PairBook.on_write_ahead_failed(cid)` follows and the create never leaves."""

    order: Order
    send: GatewayRequest


@dataclass(frozen=True)
class CancelAhead:
    """Store `record` (its request, canceled by the caller or the shutdown) and send `send` (the cancel) once it is
    durable — or once storing it has failed: the database never holds a cancel back, it only makes it survive a
    crash. Stored first, a cancel that fails and is retried is still a cancel after a restart, not a limit to fall
    back from."""

    record: RequestRecord
    send: GatewayRequest


@dataclass(frozen=True)
class Persist:
    """Store (upsert) a record; fire-and-forget."""

    item: Order | Fill | Trade | ErrorRecord | RequestRecord


@dataclass(frozen=True)
class Schedule:
    """Call `PairBook.on_timer(key)` at `due_ms` (replacing a pending timer with the same key)."""

    key: str
    due_ms: int


@dataclass(frozen=True)
class Unschedule:
    """Drop the pending timer `key`, if any."""

    key: str


@dataclass(frozen=True)
class Emit:
    """Tell listeners."""

    event: EngineEvent


@dataclass(frozen=True)
class Resolve:
    """Complete every caller waiting on `request_id` with `outcome`."""

    request_id: RequestId
    outcome: PlaceOutcome


@dataclass(frozen=True)
class Alert:
    """A critical condition for the operator (logged now; alert sinks later)."""

    key: str
    message: str
    client_order_id: ClientOrderId | None = None


@dataclass(frozen=True)
class LookupStored:
    """An engine-prefixed order unknown in memory was seen: look it up in the database and hand the stored
    order (or None) back through `PairBook.on_stored` together with `sighting` (a late report for an order
    that already left memory, or an order to adopt)."""

    client_order_id: ClientOrderId
    sighting: Sighting


Command = (
    Send | WriteAhead | CancelAhead | Persist | Schedule | Unschedule | Emit | Resolve | Alert | LookupStored | Withdraw
)
