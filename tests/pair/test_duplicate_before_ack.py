"""The same idempotency key sent again before the exchange accepted any order of the request (found by a hands-on
review: its create waited out a 429's Retry-After, and the caller retried a call that had timed out). It was
refused `conflict`, which read as "not placed" while the order was placed and filled; it is now answered as the
duplicate it is once the first order is accepted (or the request ends)."""

from __future__ import annotations

from engine.api import Accepted, Refusal
from engine.domain import RequestId
from tests.pair._book_helpers import Harness, order_json, request


def test_a_duplicate_before_the_ack_is_answered_at_the_ack_as_a_duplicate() -> None:
    h = Harness()
    original = request(key="k1")
    h.place(original)
    again = original.model_copy(update={"request_id": RequestId("r-again")})
    assert h.place(again) is None  # not answered yet: nothing was accepted so far
    h.answer(order_json(h.sent[-1], "NEW"))
    [answer] = h.outcomes[again.request_id]
    assert isinstance(answer, Accepted) and answer.duplicate, answer
    assert answer.order.client_order_id == h.sent[0].key
    assert len([r for r in h.sent if r.op.value == "create_order"]) == 1


def test_a_duplicate_of_a_request_that_ended_without_an_order_hears_how_it_ended() -> None:
    from engine.exchange import Rejected

    h = Harness()
    original = request(key="k2")
    h.place(original)
    again = original.model_copy(update={"request_id": RequestId("r-again-2")})
    h.place(again)
    h.answer(error=Rejected("Account has insufficient balance for requested action.", operation="create_order",
                            code=-2010))  # fmt: skip
    [answer] = h.outcomes[again.request_id]
    assert isinstance(answer, Refusal) and answer.reason.value != "conflict", answer
