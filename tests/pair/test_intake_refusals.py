"""What the pure book's intake refusals (`engine.pair._intake`) tell a caller's code: the conflict says exactly what is
in the way and how to queue instead; the risk and wallet refusals carry their numbers in `details` (exact plain
decimals), not only in the text."""

from __future__ import annotations

from engine.api import Refusal, RefusalReason
from engine.domain import Side
from tests.pair._book_helpers import PAIR, Harness, order_json, request


def test_an_acknowledged_resting_buy_refuses_a_second_buy_at_another_price_and_says_how_to_queue() -> None:
    # The docstring said "in flight on the same side": an acknowledged resting buy is not in flight, yet it refuses.
    h = Harness()
    first = request(price="59000")
    h.place(first)
    h.answer(order_json(h.sent[-1], "NEW"))  # acknowledged: resting at the exchange
    for other in (request(price="58000"), request(side=Side.SELL, price="61000")):
        refusal = h.place(other)
        assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.CONFLICT, refusal
        assert refusal.details == {"request_id": first.request_id, "side": "buy"}
        assert f"{PAIR} is busy: its buy request {first.request_id} is still executing" in refusal.message
        assert "one request at a time" in refusal.message
        assert 'execution.conflict_policy = "queue"' in refusal.message, refusal.message
