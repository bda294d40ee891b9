"""`Engine.cancel_order` for a request that is over while its order still rests (restored after the request was
summed up; adopted or external, `adopted-<cid>` / `external-<cid>`): the order is canceled by name. Before, the
answer was `already_done` (or `unknown_request`) with nothing sent, and under "parallel" the order blocked the other
side of the pair until it filled, with no way to cancel it through the engine."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from engine.api import CancelStatus, Refusal, RefusalReason
from engine.domain import ClientOrderId, Order, OrderRole, OrderStatus, OrderType, RequestId, Side
from engine.gateway import Op
from tests.pair._book_helpers import PAIR, T0, order_json, request
from tests.pair.test_parallel_policy import _Parallel

CID = ClientOrderId("bx-aaaaaaaaaaaaaaaaaaaaaaaaaa-p")


def _restored_orphan(h: _Parallel, status: OrderStatus = OrderStatus.OPEN) -> None:
    when = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    order = Order(
        client_order_id=CID, exchange_order_id=91, request_id="r-over", pair=PAIR, side=Side.SELL,
        order_type=OrderType.LIMIT, status=status, price=Decimal(60100), amount=Decimal("0.01"),
        role=OrderRole.PRIMARY, created_at=when, updated_at=when,
    )  # fmt: skip
    assert h.book.restore([], [order], {}, h.now) == 0


def test_canceling_a_request_that_is_over_cancels_its_order_still_open_and_frees_the_other_side() -> None:
    h = _Parallel()
    _restored_orphan(h)
    blocked = h.place(request(price="59980"))
    assert isinstance(blocked, Refusal) and blocked.details["cause"] == "opposite_side"
    commands, outcome = h.book.cancel_request(RequestId("r-over"), h.now)
    h.run(commands)
    assert outcome is not None and outcome.status is CancelStatus.CANCEL_SENT, outcome
    assert outcome.client_order_ids == (CID,) and outcome.canceling
    assert "r-over is over" in outcome.message and "queued to the exchange" in outcome.message
    [cancel] = [r for r in h.sent if r.op is Op.CANCEL_ORDER]
    assert cancel.params["origClientOrderId"] == CID
    # A second cancel while the first is under way sends nothing more.
    again_commands, again = h.book.cancel_request(RequestId("r-over"), h.now)
    h.run(again_commands)
    assert again is not None and again.status is CancelStatus.CANCEL_SENT and "already under way" in again.message
    assert len([r for r in h.sent if r.op is Op.CANCEL_ORDER]) == 1
    h.reply(cancel, order_json(cancel, "CANCELED", cancel=True))
    assert h.book.open_legs() == []
    assert not isinstance(h.place(request(price="59980")), Refusal)  # the buy goes now
    assert h.book.cancel_request(RequestId("r-over"), h.now)[1] is None  # over and closed: the database answers


def test_an_adopted_order_is_canceled_by_its_request_id() -> None:
    h = _Parallel()
    _restored_orphan(h)
    leg = h.book.leg(CID)
    assert leg is not None
    leg.request_id = RequestId(f"adopted-{CID}")  # as `stranger_leg` names an adopted order's request
    commands, outcome = h.book.cancel_request(RequestId(f"adopted-{CID}"), h.now)
    h.run(commands)
    assert outcome is not None and outcome.status is CancelStatus.CANCEL_SENT and outcome.client_order_ids == (CID,)


def test_a_request_unknown_to_the_book_is_left_to_the_database() -> None:
    h = _Parallel()
    _restored_orphan(h)
    commands, outcome = h.book.cancel_request(RequestId("r-other"), h.now)
    assert outcome is None and [c for c in commands if getattr(c, "request", None) is not None] == []


def test_the_refusal_names_the_request_to_cancel() -> None:
    """The refusal names what to do: cancel the order's request (its `request_id` in the details)."""
    h = _Parallel()
    _restored_orphan(h)
    refusal = h.place(request(price="59980"))
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.CONFLICT
    assert refusal.details["request_id"] == "r-over" and "cancel_order" in refusal.message


def test_the_shutdown_cancels_the_engines_own_loose_orders_and_waits_for_those_only() -> None:
    """`on_shutdown = cancel`: a restored or adopted order is the engine's own and is canceled like any other; an
    external one is left as it is, counted open and named, and the stop does not wait for it (it waited 15 s)."""
    h = _Parallel()
    _restored_orphan(h)
    external = ClientOrderId("manual-ui-1")
    when = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    h.book.restore([], [Order(
        client_order_id=external, exchange_order_id=92, request_id=f"external-{external}", pair=PAIR, side=Side.BUY,
        order_type=OrderType.LIMIT, status=OrderStatus.OPEN, price=Decimal(59000), amount=Decimal("0.01"),
        role=OrderRole.EXTERNAL, created_at=when, updated_at=when,
    )], {}, h.now)  # fmt: skip
    assert h.book.shutdown_requests() == [RequestId("r-over")]
    for request_id in h.book.shutdown_requests():
        h.run(h.book.cancel_at_shutdown(request_id, h.now))
    [cancel] = [r for r in h.sent if r.op is Op.CANCEL_ORDER]
    assert cancel.params["origClientOrderId"] == CID
    tally = h.book.shutdown_tally()
    assert (tally.open, tally.canceling, tally.left_open) == (2, 1, (CID, external))
    h.reply(cancel, order_json(cancel, "CANCELED", cancel=True))
    tally = h.book.shutdown_tally()
    assert (tally.canceled, tally.open, tally.canceling, tally.left_open) == (1, 1, 0, (external,))
    assert tally.summary() == {"canceled": 1, "open": 1}
