"""What the shutdown's cancel (`on_shutdown = cancel`) did to one pair's orders, counted once its answers came. Pure.

The shutdown cancels every active request of the pair (`PairBook.cancel_at_shutdown`): a queued request is
withdrawn (nothing of it ever reached the exchange), a working one has its live orders canceled (now, or at
their ack); so are the engine's own open orders whose request is over (restored, adopted). External orders are
left as they are. Asking is not doing: a cancel may fail (-2011, the order already gone or unknown to REST), the order
may fill meanwhile. The summary (`Engine.stop`) therefore counts each order by what became of it — canceled (the
exchange said so), ended otherwise (filled, expired, rejected, closed as vanished), or still open — once, and
the requests withdrawn apart from the orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.domain import ClientOrderId, OrderStatus
from engine.pair._legs import Leg

__all__ = ["SHUTDOWN_CANCEL", "ShutdownCancels", "ShutdownTally", "is_unknown"]

SHUTDOWN_CANCEL = "canceled at shutdown (on_shutdown = cancel)"
"""Why the shutdown cancels a request: the trade's note, and `requests.canceled` (a restart resumes no fallback)."""


def is_unknown(leg: Leg) -> bool:
    """Sent, never answered and not seen since: maybe at the exchange, maybe never created."""
    return leg.state.status is OrderStatus.SUBMITTED and not leg.acked


@dataclass(frozen=True)
class ShutdownTally:
    """One pair's orders at the end of the shutdown (or several pairs', added up); each order counted once."""

    canceled: int = 0
    """Orders the shutdown canceled that the exchange reports canceled."""
    ended_otherwise: int = 0
    """Orders the shutdown canceled that ended another way: filled meanwhile, expired, rejected, gone."""
    open: int = 0
    """Orders not terminal: kept open (`on_shutdown = keep`), or whose cancel was not confirmed."""
    withdrawn: int = 0
    """Requests the shutdown ended with no order to cancel (queued, or between orders): not orders."""
    canceling: int = field(default=0, compare=False)
    """Of the open ones, those the shutdown canceled (their answer is still to come): what a stop waits for. Not in
    the summary; an external order, never canceled, is open without being waited for."""
    left_open: tuple[ClientOrderId, ...] = field(default=(), compare=False)
    """The open orders' client order ids (the stop names them). Neither this nor `canceling` takes part in `==`:
    the counts are what a tally is."""
    unknown: tuple[ClientOrderId, ...] = field(default=(), compare=False)
    """Of `left_open`, the orders sent whose outcome is unknown (SUBMITTED, no answer, not seen): maybe at the
    exchange, maybe never created; the next start resolves them. Named apart: "left open" sent operators looking
    for orders that did not exist."""

    def __add__(self, other: ShutdownTally) -> ShutdownTally:
        return ShutdownTally(
            self.canceled + other.canceled,
            self.ended_otherwise + other.ended_otherwise,
            self.open + other.open,
            self.withdrawn + other.withdrawn,
            self.canceling + other.canceling,
            self.left_open + other.left_open,
            self.unknown + other.unknown,
        )

    def summary(self) -> dict[str, int]:
        """The stop summary's counts: `canceled` and `open` always, `ended_otherwise` and `withdrawn` when not 0."""
        counts = {"canceled": self.canceled, "open": self.open - len(self.unknown)}
        if self.unknown:
            counts["outcome_unknown"] = len(self.unknown)
        if self.ended_otherwise:
            counts["ended_otherwise"] = self.ended_otherwise
        if self.withdrawn:
            counts["withdrawn"] = self.withdrawn
        return counts


@dataclass
class ShutdownCancels:
    """What the shutdown's cancel asked of one pair: the orders it canceled (the legs themselves, which keep
    their last state after their request leaves memory), and how many requests it withdrew."""

    legs: dict[ClientOrderId, Leg] = field(default_factory=dict)
    withdrawn: int = 0

    def tally(self, open_legs: list[Leg]) -> ShutdownTally:
        """Count each order once: the canceled ones by how they ended, `open_legs` (every open order of the pair,
        canceled by the shutdown or not) as open."""
        # A create that never reached the exchange (withdrawn as the engine stopped, or refused) ended its request
        # with nothing there: counted with the requests withdrawn, not as an order that "ended otherwise".
        never = sum(1 for leg in self.legs.values() if leg.state.status is OrderStatus.REJECTED and not leg.acked)
        ended = [leg.state.status for leg in self.legs.values() if leg.terminal]
        canceled = sum(status is OrderStatus.CANCELED for status in ended)
        # One that left memory unfinished (its request ended all the same) is still open, and counted once.
        canceling = {cid for cid, leg in self.legs.items() if not leg.terminal}
        # Open at the exchange, or maybe (sent, its answer not in): not one whose create is still to be sent again
        # (PENDING_SUBMIT, after a 429): nothing of it is there, and a restart resumes its request.
        at_exchange = {leg.cid for leg in open_legs if leg.state.status is not OrderStatus.PENDING_SUBMIT}
        still_open = sorted(at_exchange | canceling)
        legs = {**{leg.cid: leg for leg in open_legs}, **self.legs}
        unknown = tuple(c for c in still_open if is_unknown(legs[c]))
        otherwise = len(ended) - canceled - never
        return ShutdownTally(
            canceled, otherwise, len(still_open), self.withdrawn + never, len(canceling), tuple(still_open), unknown
        )
