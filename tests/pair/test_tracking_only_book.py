"""A tracking-only book (its pair halted past the restart budget, the root running it) never trades.

It still applies what the exchange says and looks orders up, but what its plans would send — a fallback, a
re-sent create, a cancel — is not: a fallback or re-send is closed as refused (the request ends with what was
filled, the remainder reported), a cancel is skipped (the order stays as it is, tracked) unless the book may still
cancel (a halted whitelisted pair's limit at its deadline). Pure: the harness
carries out the book's commands the way an actor does.
"""

from __future__ import annotations

from decimal import Decimal

from engine.domain import ClientOrderId, OrderStatus, TradeStatus
from engine.exchange import OrderNotFound, OutcomeUnknown
from engine.gateway import Op
from engine.pair import WriteAhead
from tests.pair._book_helpers import Harness, order_json, request

_MUTATING = (Op.CREATE_ORDER, Op.CANCEL_ORDER)


def test_a_fallback_the_plan_wants_after_a_cancel_answer_is_refused_not_sent() -> None:
    # The dead actor had sent the limit-timeout cancel; its answer reaches the tracking-only book.
    h = Harness()
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    cancel = h.sent[-1]
    assert cancel.op is Op.CANCEL_ORDER
    h.book.tracking_only = True
    sent, stored = len(h.sent), len(h.stored)
    h.answer(order_json(cancel, "CANCELED", "0.004", [("60000", "0.004")], cancel=True))
    assert [r.op for r in h.sent[sent:] if r.op in _MUTATING] == []
    assert not any(isinstance(s, WriteAhead) for s in h.stored[stored:])
    [trade] = h.trades()
    assert (trade.status, trade.filled, trade.remainder) == (TradeStatus.PARTIAL, Decimal("0.004"), Decimal("0.006"))
    assert "not sent: the pair is halted" in trade.note
    assert h.book.open_legs() == []  # nothing left pending: the refused fallback is closed, not SUBMITTED
    assert h.book.reconcilable(tracking_only=True) == []


def test_a_create_found_never_created_is_not_re_sent() -> None:
    h = Harness(unknown_outcome_grace_ms=3000)
    req = request()
    h.place(req)
    primary = ClientOrderId(h.sent[-1].params["newClientOrderId"])
    h.answer(error=OutcomeUnknown("5xx", operation="create_order"))
    h.book.tracking_only = True
    for _ in range(20):
        pending = [k for k in h.timers if k.startswith("lookup:")]
        if not pending:
            break
        h.fire(pending[0])
        if h.sent[-1].op is Op.FETCH_ORDER:
            h.answer(error=OrderNotFound("Order does not exist.", operation="fetch_order", code=-2013))
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1  # the original create only
    leg = h.book.leg(primary)
    assert leg is not None and leg.state.status is OrderStatus.REJECTED
    assert h.book.reconcilable(tracking_only=True) == []  # closed: no lookup round after round


def test_a_limit_timeout_sends_no_cancel_and_the_order_stays_tracked() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.book.tracking_only = True
    sent = len(h.sent)
    h.fire(f"plan:{req.request_id}")
    assert h.sent[sent:] == []
    [leg] = h.book.open_legs()
    assert leg.state.status is OrderStatus.OPEN
    assert [o.client_order_id for o in h.book.reconcilable(tracking_only=True)] == [leg.cid]


def test_a_halted_pairs_limit_is_canceled_at_its_deadline_and_gets_no_fallback() -> None:
    # A halted whitelisted pair may cancel (not a new order): its limit must not rest past its deadline, to fill
    # days later. Before, the plan's deadline was dropped and the limit rested until someone noticed.
    h = Harness()
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.book.tracking_only = True
    h.book.cancels_allowed = True
    creates = [r.op for r in h.sent].count(Op.CREATE_ORDER)
    h.fire(f"plan:{req.request_id}")
    cancel = h.sent[-1]
    assert cancel.op is Op.CANCEL_ORDER
    h.answer(order_json(cancel, "CANCELED", "0.004", [("60000", "0.004")], cancel=True))
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == creates  # the fallback is still refused
    [trade] = h.trades()
    assert (trade.status, trade.filled, trade.remainder) == (TradeStatus.PARTIAL, Decimal("0.004"), Decimal("0.006"))
    assert h.book.open_legs() == []


def test_a_book_outside_the_whitelist_never_cancels() -> None:
    h = Harness()
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.book.tracking_only = True  # cancels_allowed stays False: another instance's or the operator's orders
    h.fire(f"plan:{req.request_id}")
    assert Op.CANCEL_ORDER not in [r.op for r in h.sent]
