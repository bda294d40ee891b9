"""The facade's side of a replayed idempotency key (`engine.api._replays`), over fakes of the pair's actor and the
database: the pair's actor answers a replay with the request's first accepted order, which after a limit timed out
reads `canceled`, nothing filled, whatever the fallback did; the answer the caller gets carries the request's
`trade` once it has finished and its `latest` order, in their state now (from the actor while it holds them), and
the placement's `request_id` names the original request. The whole path against the simulator is in
tests/engine_e2e/test_replayed_keys.py."""

from __future__ import annotations

import concurrent.futures
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pykka

from engine.api import Accepted, Placement, Refusal, RefusalReason
from engine.api._cancels import CancelThread
from engine.api._replays import EngineReplays, replay_answer
from engine.domain import Order, OrderStatus, Pair, RequestId, TradeStatus
from tests.db._records import order, progressed, trade

PAIR = Pair("BTC/USDT")
RID = "r-original"
PRIMARY = order("bx-k1-p", request_id=RID, amount=Decimal("0.01"), price=Decimal(59950))
CANCELED = progressed(PRIMARY, Decimal(0), OrderStatus.CANCELED)
FALLBACK_SENT = order("bx-k1-f1", request_id=RID, amount=Decimal("0.01"), order_type="market", price=None,
                      status=OrderStatus.PENDING_SUBMIT, role="fallback", parent_client_order_id="bx-k1-p")  # fmt: skip
FALLBACK_FILLED = progressed(FALLBACK_SENT, Decimal("0.01"), OrderStatus.FILLED, quote_filled=Decimal(600))
DONE = trade(RID, requested=Decimal("0.01"), filled=Decimal("0.01"), average_price=Decimal(60000),
             status=TradeStatus.FILLED, remainder=Decimal(0))  # fmt: skip


class _Answer:
    def __init__(self, value: object = None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error

    def get(self, timeout: float) -> object:  # float-ok: seconds
        assert timeout > 0  # every wait is bounded
        if self._error is not None:
            raise self._error
        return self._value


class _Facade(EngineReplays):
    """`EngineReplays` over a database holding `stored` and `done`, and a pair actor holding `live`."""

    def __init__(self, stored: list[Order], done: Any, live: dict[str, Order] | None, fail: bool = False) -> None:
        self._stopped = False
        self._cancel_thread = CancelThread()
        error = OSError("database is down") if fail else None
        self._store = lambda: SimpleNamespace(
            get_trade=lambda rid: _Answer(done if rid == RID else None, error),
            find_orders=lambda request_id: _Answer([o for o in stored if o.request_id == request_id], error),
        )
        if live is None:  # the pair's actor is being restarted: nothing to ask
            actor = SimpleNamespace(get_order=lambda cid: _Answer(error=pykka.ActorDeadError("restarting")))
        else:
            actor = SimpleNamespace(get_order=lambda cid: _Answer(live.get(cid)))
        self._routing = {PAIR: actor}

    def place(self, outcome: Any) -> Placement:
        """A placement whose pair actor answers `outcome`, as the engine wires it; resolved within 10 s."""
        placement = Placement(RequestId("r-this-call"))
        self._actor_answer(placement).set_result(outcome)
        placement.result(timeout=10)
        return placement


def test_a_finished_request_that_left_memory_answers_with_its_trade_and_its_fallback() -> None:
    # The author's case: limit timed out, the market fallback filled 0.01; the answer said "canceled, 0 filled".
    facade = _Facade([CANCELED, FALLBACK_FILLED], DONE, live={})
    placement = facade.place(Accepted(CANCELED, duplicate=True))
    answer = placement.result()
    assert isinstance(answer, Accepted) and answer.duplicate
    assert answer.trade == DONE and answer.trade is not None and answer.trade.filled == Decimal("0.01")
    assert answer.latest == FALLBACK_FILLED
    assert answer.order == CANCELED  # still the request's first accepted order, now canceled
    assert placement.request_id == RID  # names the original request, not the id drawn for this call


def test_a_finished_request_still_in_its_pairs_memory_answers_with_the_live_orders() -> None:
    # The database holds the orders' write-aheads (pending); the pair's actor their state now.
    facade = _Facade([PRIMARY, FALLBACK_SENT], DONE, live={PRIMARY.client_order_id: CANCELED,
                                                           FALLBACK_SENT.client_order_id: FALLBACK_FILLED})  # fmt: skip
    answer = facade.place(Accepted(PRIMARY, duplicate=True)).result()
    assert isinstance(answer, Accepted)
    assert (answer.order, answer.latest, answer.trade) == (CANCELED, FALLBACK_FILLED, DONE)


def test_a_request_still_executing_answers_with_its_working_fallback_and_no_trade() -> None:
    facade = _Facade([PRIMARY, FALLBACK_SENT], None, live={PRIMARY.client_order_id: CANCELED,
                                                           FALLBACK_SENT.client_order_id: FALLBACK_SENT})  # fmt: skip
    answer = facade.place(Accepted(CANCELED, duplicate=True)).result()
    assert isinstance(answer, Accepted) and answer.trade is None
    assert answer.latest == FALLBACK_SENT


def test_a_rejected_fallback_is_not_the_latest_order() -> None:
    rejected = progressed(FALLBACK_SENT, Decimal(0), OrderStatus.REJECTED)
    answer = replay_answer(Accepted(CANCELED, duplicate=True), [CANCELED, rejected], None)
    assert answer.latest == CANCELED and answer.order == CANCELED


def test_a_pair_actor_being_restarted_answers_from_the_database() -> None:
    facade = _Facade([CANCELED, FALLBACK_FILLED], DONE, live=None)
    answer = facade.place(Accepted(CANCELED, duplicate=True)).result()
    assert isinstance(answer, Accepted) and answer.latest == FALLBACK_FILLED


def test_an_outcome_that_cannot_be_read_is_a_conflict_to_retry_never_the_first_orders_state() -> None:
    facade = _Facade([CANCELED], DONE, live={}, fail=True)
    placement = facade.place(Accepted(CANCELED, duplicate=True))
    refusal = placement.result()
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.CONFLICT, refusal
    assert refusal.details == {"request_id": RID, "retry": "1"}
    assert "nothing new was sent" in refusal.message and "database is down" in refusal.message


def test_a_duplicate_answered_after_the_stop_is_shutting_down_naming_the_request() -> None:
    facade = _Facade([CANCELED], DONE, live={})
    facade._stopped = True
    facade._cancel_thread.close()
    refusal = facade.place(Accepted(CANCELED, duplicate=True)).result()
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.SHUTTING_DOWN, refusal
    assert refusal.details == {"request_id": RID}


def test_other_answers_pass_through_at_once_on_the_answering_thread() -> None:
    facade = _Facade([], None, live={})
    facade._cancel_thread.close()  # nothing may need it
    first = Accepted(PRIMARY)
    placement = Placement(RequestId(RID))
    answer: concurrent.futures.Future[Any] = facade._actor_answer(placement)
    answer.set_result(first)
    assert placement.done() and placement.result() is first and placement.request_id == RID
    refused = Placement(RequestId("r-refused"))
    facade._actor_answer(refused).set_result(Refusal(RefusalReason.CONFLICT, "busy", {"request_id": RID}))
    assert refused.request_id == "r-refused"  # a refusal names no other request
