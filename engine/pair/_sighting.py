"""An order seen at the exchange that is not in memory: what the pair book's recovery half (`engine.pair._recover`)
adopts, records as external, or looks up in the database."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.domain import ClientOrderId, Side
from engine.exchange import ExecutionReport
from engine.orders import Acked, OrderEvent, events_from_report, status_from_rest_order
from engine.venue import parse_order

__all__ = ["Sighting"]


@dataclass(frozen=True)
class Sighting:
    """An order seen at the exchange (a stream report or an openOrders row) that is not in memory."""

    client_order_id: ClientOrderId
    side: Side
    order_type: str
    quantity: Decimal
    price: Decimal | None
    events: tuple[OrderEvent, ...]
    source: str

    @classmethod
    def of_report(cls, report: ExecutionReport) -> Sighting:
        """From a user-data execution report."""
        cid = ClientOrderId(report.orig_client_order_id or report.client_order_id)
        return cls(cid, report.side, report.order_type, report.quantity, report.price or None,
                   events_from_report(report), "stream")  # fmt: skip

    @classmethod
    def of_rest(cls, row: dict[str, object]) -> Sighting:
        """From a REST order object (openOrders)."""
        snap = parse_order(row)
        events: tuple[OrderEvent, ...] = (Acked(snap.order_id), status_from_rest_order(row))
        return cls(snap.client_order_id, snap.side, snap.order_type, snap.orig_qty, snap.price or None, events,
                   "openOrders")  # fmt: skip
