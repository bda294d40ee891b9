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


def test_a_duplicate_of_a_queued_request_canceled_while_queued_hears_the_same() -> None:
    # Diff review: an execution dropped without its end (canceled while queued) left its waiting duplicates
    # unanswered for ever (the control API's 504); they were refused `conflict` at once before.
    h = Harness(conflict_policy="queue")
    h.place(request(key="busy"))  # executing
    queued = request(key="q1")
    assert h.place(queued) is None  # queued behind it
    again = queued.model_copy(update={"request_id": RequestId("r-dup")})
    h.place(again)
    h.run(h.book.cancel(queued.request_id, h.now))
    [original] = h.outcomes[queued.request_id]
    assert h.outcomes[again.request_id] == [original] and isinstance(original, Refusal)


def test_a_duplicate_of_a_queued_request_refused_at_its_start_hears_the_same() -> None:
    h = Harness(conflict_policy="queue")
    h.place(request(key="busy2"))
    queued = request(key="q2", price=None)  # a limit at the best bid when it starts
    assert h.place(queued) is None
    again = queued.model_copy(update={"request_id": RequestId("r-dup2")})
    h.place(again)
    h.book.on_price(None, None, h.now)  # no price when it starts: refused before anything is placed
    h.answer(order_json(h.sent[0], "FILLED", executed="0.01", fills=[("60000", "0.01")]), index=0)
    [original] = h.outcomes[queued.request_id]
    assert h.outcomes[again.request_id] == [original] and isinstance(original, Refusal)


def test_a_duplicate_of_a_queued_request_refused_by_a_halt_at_its_start_hears_the_same() -> None:
    from engine.pair import IntakeContext

    h = Harness(conflict_policy="queue")
    h.place(request(key="busy3"))  # executing
    queued = request(key="q3")
    assert h.place(queued) is None  # queued behind it
    again = queued.model_copy(update={"request_id": RequestId("r-dup3")})
    assert h.place(again) is None  # waits for the queued one
    h.book.intake = lambda: IntakeContext(halted=True, halt_reason="kill switch")  # type: ignore[method-assign]
    h.answer(order_json(h.sent[0], "FILLED", executed="0.01", fills=[("60000", "0.01")]), index=0)
    [original] = h.outcomes[queued.request_id]
    assert h.outcomes.get(again.request_id) == [original] and isinstance(original, Refusal)
