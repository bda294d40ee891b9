"""A caller's cancel of a request whose create still waits in the gateway (found by a hands-on review).

A create held by a 429's Retry-After (or an order window) was answered "canceled at its ack" and then went out when
the wait ended: a market order canceled meanwhile was filled, and the trade said "filled before the cancel took
effect". The book now asks the gateway to withdraw it (`Withdraw`); one not sent yet is answered
`CANCELED_BEFORE_SENT` and its request ends canceled with nothing sent.
"""

from __future__ import annotations

from engine.api import EventKind
from engine.domain import OrderType, TradeStatus
from engine.pair import Withdraw
from engine.venue import CANCELED_BEFORE_SENT
from tests.pair._book_helpers import Harness, request


def _withdrawn() -> object:
    from actors.gateway._waits import withdrawn_error

    return withdrawn_error(CANCELED_BEFORE_SENT)


def test_a_market_request_canceled_while_its_create_waits_is_withdrawn_and_never_sent() -> None:
    h = Harness()
    req = request(order_type=OrderType.MARKET, price=None)
    h.place(req)
    creates = [r for r in h.sent if r.op.value == "create_order"]
    commands, outcome = h.book.cancel_request(req.request_id, h.now)
    assert [c.client_order_id for c in commands if isinstance(c, Withdraw)] == [creates[0].key]
    assert outcome is not None and "withdrawn if it has not left" in outcome.message
    h.run(commands)
    h.answer(error=_withdrawn(), index=h.sent.index(creates[0]))
    [trade] = h.trades()
    assert trade.status is TradeStatus.CANCELED and trade.filled == 0, trade
    assert "filled before the cancel" not in trade.note, trade.note
    assert [r for r in h.sent if r.op.value == "create_order"] == creates  # nothing sent again
    assert not [e for e in h.events if e.kind is EventKind.ERROR]  # nothing went wrong


def test_a_limit_whose_timeout_cancel_withdraws_its_unsent_create_falls_back_for_all_of_it() -> None:
    h = Harness(limit_timeout_ms=5_000)
    h.place(request())
    [primary] = [r for r in h.sent if r.op.value == "create_order"]
    h.fire(next(k for k in h.timers if k.startswith("plan:")))  # the timeout, the create still held
    h.answer(error=_withdrawn(), index=h.sent.index(primary))
    creates = [r for r in h.sent if r.op.value == "create_order"]
    assert len(creates) == 2 and creates[1].params.get("quantity") == primary.params.get("quantity"), creates
