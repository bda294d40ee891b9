"""Found by a mutation audit (the bound could go without a test failing): a create whose outcome stays unknown and
which the lookups keep concluding "never created" is re-sent at most `max_create_resends` times under its id, then
the request ends (not re-sent forever)."""

from __future__ import annotations

from engine.exchange import OrderNotFound, OutcomeUnknown
from engine.gateway import Op
from tests.pair._book_helpers import Harness, request


def test_never_created_creates_are_re_sent_a_bounded_number_of_times() -> None:
    h = Harness(limit_timeout_ms=3_600_000, unknown_outcome_grace_ms=3000, max_create_resends=2)
    req = request()
    h.place(req)
    cid = h.sent[-1].params["newClientOrderId"]
    answered = 0
    for _ in range(500):
        while answered < len(h.sent):  # answer everything sent so far, in order
            sent = h.sent[answered]
            answered += 1
            if sent.op is Op.CREATE_ORDER:
                h.answer(error=OutcomeUnknown("5xx", operation="create_order"), index=answered - 1)
            elif sent.op is Op.FETCH_ORDER:
                h.answer(
                    error=OrderNotFound("Order does not exist.", operation="fetch_order", code=-2013),
                    index=answered - 1,
                )
        pending = [k for k in h.timers if k.startswith("lookup:")]
        if not pending:
            break
        h.fire(pending[0])
    creates = [r for r in h.sent if r.op is Op.CREATE_ORDER and r.params["newClientOrderId"] == cid]
    assert len(creates) == 1 + 2, len(creates)
    assert h.outcomes.get(req.request_id), "the request never ended"
