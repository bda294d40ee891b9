"""An unreadable answer changes nothing and is taken as a failed call of its kind: a create's outcome is looked up,
a lookup or a fills fetch is asked again; an error of the engine's own still crashes the actor (and its restart
re-arms what it waits for). Found by a review: answers recorded as unreadable stalled their order or request for good,
one was half applied, and a bug in the plan was blamed on the exchange."""

from __future__ import annotations

import pytest

from engine.gateway import Op
from tests.pair._book_helpers import Harness, order_json, request


def _drain(h: Harness, until_ms: int) -> None:
    while h.timers:
        key, due = min(h.timers.items(), key=lambda kv: kv[1])
        if due > until_ms:
            break
        h.fire(key)


def test_an_unreadable_create_answer_is_looked_up() -> None:
    h = Harness()
    req = request("0.01", None)  # market
    h.place(req)
    create = h.sent[-1]
    data = order_json(create, "FILLED", executed="0.01", fills=[("60000", "0.01")])
    data["fills"][0]["price"] = "NaN"  # before aef6471: InvalidOperation crashed the actor -> restart -> lookup
    sent_before = len(h.sent)
    h.answer(data)
    _drain(h, h.now + 6 * 3600_000)  # six hours of every timer the book set
    lookups = [r for r in h.sent[sent_before:] if r.op is Op.FETCH_ORDER]
    assert lookups, "the order (FILLED at the exchange) is never looked up; caller never answered"


def test_an_unreadable_mytrades_answer_is_asked_again() -> None:
    h = Harness()
    req = request("0.01", None)  # market
    h.place(req)
    create = h.sent[-1]
    # FILLED, fills not in the answer (REST lag / RESULT-like): the book asks myTrades for them
    h.answer(order_json(create, "FILLED", executed="0.01"))
    trades_req = h.sent[-1]
    assert trades_req.op is Op.MY_TRADES, h.sent
    h.answer(["not-an-object"])  # AttributeError: before aef6471 a crash -> restart -> fills timer re-armed
    _drain(h, h.now + 6 * 3600_000)
    again = [r for r in h.sent if r.op is Op.MY_TRADES]
    assert len(again) > 1, "myTrades never asked again: the request stays SETTLING, no trade is stored"


def test_an_unreadable_lookup_answer_keeps_the_resolver_looking() -> None:
    from engine.exchange import OutcomeUnknown

    h = Harness()
    req = request("0.01", None)
    h.place(req)
    h.answer(error=OutcomeUnknown("timeout", operation="create_order"))
    _drain(h, h.now + 120_000)
    lookups = [i for i, r in enumerate(h.sent) if r.op is Op.FETCH_ORDER]
    assert lookups, h.sent
    data = order_json(h.sent[lookups[-1]], "FILLED", executed="0.01")
    data["executedQty"] = 0.01  # a float: refused since aef6471 (TypeError-free path: WireFormatError)
    h.answer(data, index=lookups[-1])
    n = len(h.sent)
    _drain(h, h.now + 6 * 3600_000)
    more = [r for r in h.sent[n:] if r.op is Op.FETCH_ORDER]
    assert more, "no lookup after an unreadable one: the unknown create is never resolved"


def test_an_unreadable_answer_is_not_half_applied() -> None:
    from engine.api import EventKind
    from engine.domain import Fill

    h = Harness()
    h.place(request("0.01", None))
    create = h.sent[-1]
    data = order_json(create, "FILLED", executed="0.01", fills=[("60000", "0.01")])
    data["orderId"] = float(data["orderId"])  # _wire._int takes 5.0; _events._int (status_from_rest_order) does not
    h.answer(data)
    errors = [e.message for e in h.events if e.kind is EventKind.ERROR]
    fills = [s for s in h.stored if isinstance(s, Fill)]
    assert not (errors and fills), "recorded as unreadable, yet its fill was applied and stored"


def test_a_programming_error_in_the_plan_is_not_blamed_on_the_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.pair._plans as plans
    from engine.api import EventKind
    from engine.execution import LegAcked

    real_feed = plans.PlanBook._feed

    def buggy_feed(self, execution, event, now_ms):  # stands for any bug the plan may hold on an ack
        if isinstance(event, LegAcked):
            raise AttributeError("'NoneType' object has no attribute 'quantity'")
        return real_feed(self, execution, event, now_ms)

    monkeypatch.setattr(plans.PlanBook, "_feed", buggy_feed)
    h = Harness()
    req = request("0.01", None)
    h.place(req)
    create = h.sent[-1]
    with pytest.raises(AttributeError):  # the actor crashes and its restart re-arms the order's timers
        h.answer(order_json(create, "FILLED", executed="0.01", fills=[("60000", "0.01")]))  # a perfectly good answer
    errors = [e.message for e in h.events if e.kind is EventKind.ERROR]
    assert not errors, "a bug in the engine reported as the exchange's unreadable answer"
