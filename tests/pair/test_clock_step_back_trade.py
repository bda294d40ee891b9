"""A request that closes after the host clock stepped back past its creation still stores its trade and answers its
caller: the trade's `closed_at` would be before its `created_at`, which failed validation and crashed the pair actor
at every start until the clock caught up (found by a time review; an NTP step of 128 ms or more does it)."""

from __future__ import annotations

from tests.pair._book_helpers import Harness, order_json, request


def test_a_fill_after_the_clock_stepped_back_closes_the_request() -> None:
    h = Harness()
    req = request()
    h.place(req)
    create = h.sent[-1]
    created_at = h.now
    h.now -= 5_000  # the host clock steps back 5 s while the create is in flight
    h.answer(order_json(create, "FILLED", "0.01", [("60000", "0.01")]))
    trades = h.trades()
    assert len(trades) == 1
    assert trades[0].closed_at == trades[0].created_at  # clamped: never before it was created
    assert trades[0].created_at.timestamp() * 1000 == created_at
    assert req.request_id in h.outcomes
