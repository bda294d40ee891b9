"""Found by a mutation audit: with a grace period longer than the minute of misses, an acknowledged order is not closed
as vanished while still inside the grace period (`young` in OrderDesk._not_found)."""

from __future__ import annotations

from engine.domain import OrderStatus
from tests.pair._book_helpers import T0, Harness
from tests.pair.test_book_requeue_and_faults import _NOT_FOUND, _acked_then_missed, _status_lookups


def test_misses_inside_a_long_grace_period_never_close_the_order() -> None:
    h = Harness(unknown_outcome_grace_ms=180_000)
    cid = _acked_then_missed(h)
    _status_lookups(h, cid, _NOT_FOUND, T0 + 170_000)
    leg = h.book.leg(cid)
    assert leg is not None and leg.state.status is OrderStatus.OPEN, leg.state.status
