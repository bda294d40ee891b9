"""What a caller's cancel did, as the pure pair book answers it (`PairBook.cancel_request` → `CancelOutcome`): the
cancel queued to the exchange, a cancel waiting for its order's ack, a request withdrawn with nothing at the
exchange, a request already finished (still in memory), and a request the book does not hold (None: the caller's
side asks the database)."""

from __future__ import annotations

from engine.api import Accepted, CancelOutcome, CancelStatus, EventKind
from engine.domain import ClientOrderId, OrderStatus, RequestId, TradeStatus
from engine.exchange import RetryLater
from engine.gateway import Op
from engine.pair import CancelAhead
from tests.pair._book_helpers import PAIR, Harness, order_json, request


def _cancel(h: Harness, request_id: RequestId) -> CancelOutcome | None:
    commands, outcome = h.book.cancel_request(request_id, h.now)
    h.run(commands)
    return outcome


def test_a_resting_limit_is_cancel_sent_with_its_order_and_no_fallback_follows() -> None:
    h = Harness()
    req = request()
    h.place(req)
    create = h.sent[-1]
    h.answer(order_json(create, "NEW"))
    cid = create.params["newClientOrderId"]
    commands, outcome = h.book.cancel_request(req.request_id, h.now)
    assert [c.send.key for c in commands if isinstance(c, CancelAhead)] == [cid]  # queued, behind its record
    h.run(commands)
    assert outcome is not None and outcome.status is CancelStatus.CANCEL_SENT and outcome.canceling
    assert outcome.client_order_ids == (cid,) and outcome.at_ack == ()
    assert (outcome.pair, outcome.request_id) == (PAIR, req.request_id)
    assert "queued to the exchange" in outcome.message and "no fallback follows" in outcome.message
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    assert [r.op for r in h.sent] == [Op.CREATE_ORDER, Op.CANCEL_ORDER]  # no fallback
    assert [e.kind for e in h.events][-2:] == [EventKind.CANCELED, EventKind.DONE]


def test_a_second_cancel_says_the_first_is_under_way_and_sends_nothing_more() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    first = _cancel(h, req.request_id)
    sent = len(h.sent)
    again = _cancel(h, req.request_id)
    assert first is not None and again is not None
    assert again.status is CancelStatus.CANCEL_SENT and again.client_order_ids == first.client_order_ids
    assert "already under way" in again.message
    assert len(h.sent) == sent


def test_an_order_not_yet_acknowledged_is_canceled_at_its_ack() -> None:
    h = Harness()
    req = request()
    h.place(req)
    create = h.sent[-1]
    outcome = _cancel(h, req.request_id)
    cid = create.params["newClientOrderId"]
    assert outcome is not None and outcome.status is CancelStatus.CANCEL_AT_ACK and outcome.canceling
    assert outcome.at_ack == (cid,) and outcome.client_order_ids == ()
    assert h.sent == [create]  # nothing overtakes the create
    h.answer(order_json(create, "NEW"))
    assert isinstance(h.outcomes[req.request_id][0], Accepted)
    assert h.sent[-1].op is Op.CANCEL_ORDER and h.sent[-1].key == cid  # sent at the ack


def test_a_create_refused_for_now_is_resent_and_its_cancel_waits_for_that_ack() -> None:
    # "Retry later" (a 429): the same order goes again under its id; the cancel must not overtake it.
    h = Harness()
    req = request()
    h.place(req)
    create = h.sent[-1]
    h.answer(error=RetryLater("too busy", operation="create_order"))
    assert h.sent[-1].op is Op.CREATE_ORDER and h.sent[-1].key == create.key
    outcome = _cancel(h, req.request_id)
    assert outcome is not None and outcome.status is CancelStatus.CANCEL_AT_ACK and outcome.at_ack == (create.key,)


def test_a_request_between_its_orders_is_withdrawn_and_ends_at_once() -> None:
    # The limit timed out and was canceled; the fallback was refused for now (retry later, no re-send of the same
    # order left): the plan waits to place another, and nothing rests.
    h = Harness(limit_timeout_ms=1000, max_create_resends=0)
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    assert h.sent[-1].op is Op.CREATE_ORDER  # the fallback
    h.answer(error=RetryLater("too busy", operation="create_order"))
    sent = len(h.sent)
    outcome = _cancel(h, req.request_id)
    assert outcome is not None and outcome.status is CancelStatus.WITHDRAWN and outcome.canceling
    assert outcome.final_status is TradeStatus.CANCELED
    assert len(h.sent) == sent  # nothing more is sent
    [trade] = h.trades()
    assert trade.status is TradeStatus.CANCELED


def test_a_queued_request_is_withdrawn_and_its_placement_answered_canceled() -> None:
    h = Harness(conflict_policy="queue")
    first, queued = request(), request()
    h.place(first)
    h.place(queued)
    outcome = _cancel(h, queued.request_id)
    assert outcome is not None and outcome.status is CancelStatus.WITHDRAWN and outcome.final_status is None
    assert "nothing was sent" in outcome.message
    [refusal] = h.outcomes[queued.request_id]
    assert refusal.reason.value == "canceled"


def test_a_finished_request_still_in_memory_is_already_done_with_its_status() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "FILLED", "0.01", [("60000", "0.01")]))
    assert [t.status for t in h.trades()] == [TradeStatus.FILLED]
    assert h.book.execution(req.request_id) is not None  # the actor forgets it after its message; not yet here
    sent = len(h.sent)
    outcome = _cancel(h, req.request_id)
    assert outcome is not None and outcome.status is CancelStatus.ALREADY_DONE and not outcome.canceling
    assert outcome.final_status is TradeStatus.FILLED and "already finished (filled)" in outcome.message
    assert len(h.sent) == sent


def test_a_request_whose_fills_are_still_fetched_is_already_done() -> None:
    # SETTLING: the orders are closed, the plan has its result, the summary waits for fills: nothing to cancel.
    h = Harness(limit_timeout_ms=1000)
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", "0.004", cancel=True))  # 0.004 executed, its fills not known
    fallback = next(r for r in reversed(h.sent) if r.op is Op.CREATE_ORDER)
    h.answer(order_json(fallback, "FILLED", "0.006", [("60010", "0.006")]), index=h.sent.index(fallback))
    assert h.trades() == []  # settling
    outcome = _cancel(h, req.request_id)
    assert outcome is not None and outcome.status is CancelStatus.ALREADY_DONE
    assert outcome.final_status is TradeStatus.FILLED
    leg = h.book.leg(ClientOrderId(fallback.params["newClientOrderId"]))
    assert leg is not None and leg.state.status is OrderStatus.FILLED


def test_a_request_the_book_does_not_hold_is_left_to_the_database() -> None:
    h = Harness()
    commands, outcome = h.book.cancel_request(RequestId("no-such-request"), h.now)
    assert commands == [] and outcome is None
