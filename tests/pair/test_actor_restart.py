"""The pair actor over fakes at its seams (gateway, persistence, manual-clock ticker): no caller ever waits
forever when it crashes. The test plays the root: it starts a new actor over the same book when told of a crash.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pykka
import pytest
from pykka._envelope import Envelope
from pykka.messages import ProxyCall

from actors.pair import ORPHAN_GRACE_MS, release_callers
from engine.api import Accepted, Refusal, RefusalReason
from engine.domain import OrderRequest, OrderStatus, Side
from engine.execution import Decision, RiskSnapshot
from engine.gateway import GatewayResult, Op
from tests.pair._book_helpers import order_json, request
from tests.pair._restart_rig import _WAIT_S, _Rig, _Store


@pytest.fixture(autouse=True)
def _stop_all() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def test_a_caller_waiting_at_the_crash_hears_the_real_outcome_from_the_restarted_actor() -> None:
    rig = _Rig()
    req = request()
    future = rig.place(req)
    [create] = rig.gateway.creates(1)
    rig.proxy.crash.defer()
    assert rig.restarted.wait(_WAIT_S)
    rig.ticker.advance(ORPHAN_GRACE_MS)  # a restarted pair's callers are not given up on
    assert not future.done()
    # The create's answer comes to the reply address the dead actor gave: it reaches its successor.
    assert create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "NEW")))
    outcome = future.result(_WAIT_S)
    assert isinstance(outcome, Accepted) and outcome.order.status is OrderStatus.OPEN
    [order] = rig.proxy.open_orders().get(timeout=_WAIT_S)
    assert order.status is OrderStatus.OPEN  # the new actor knows the order is live (not stuck `submitted`)


def test_a_timer_whose_tell_is_lost_in_the_crash_race_is_rearmed_by_the_restarted_actor() -> None:
    rig = _Rig()
    req = request()
    future = rig.place(req)
    [create] = rig.gateway.creates(1)
    assert create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "NEW")))
    assert isinstance(future.result(_WAIT_S), Accepted)
    dead = rig.refs[-1]
    rig.proxy.crash.defer()
    assert rig.restarted.wait(_WAIT_S)
    # The limit's deadline came as the actor died: the ticker's tell passed `is_alive()` and landed in the inbox
    # after `on_failure` took it, so pykka drops it. The book still holds the deadline: the restarted actor
    # re-armed it (`PairBook.resume`).
    dead.actor_inbox.put(Envelope(ProxyCall(attr_path=("on_timer",), args=(f"plan:{req.request_id}",), kwargs={})))
    rig.proxy.active_requests().get(timeout=_WAIT_S)  # barrier: the new actor's `on_start` has run
    rig.ticker.advance(3_600_000)  # the limit timeout
    with rig.gateway.arrived:
        assert rig.gateway.arrived.wait_for(lambda: any(r.op is Op.CANCEL_ORDER for r in rig.gateway.sent), _WAIT_S), (
            "the limit's timeout was lost with the dead actor"
        )


def test_an_answer_arriving_while_no_actor_runs_the_book_is_kept_for_the_next_one() -> None:
    rig = _Rig(restart=False)
    future = rig.place(request())
    [create] = rig.gateway.creates(1)
    rig.proxy.crash.defer()
    assert rig.crashed.wait(_WAIT_S)
    assert create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "NEW")))  # nobody to tell: parked
    rig.start()
    assert isinstance(future.result(_WAIT_S), Accepted)


def test_requests_queued_behind_the_crash_are_executed_by_the_restarted_actor() -> None:
    rig = _Rig()
    entered, gate = threading.Event(), threading.Event()
    rig.proxy.hold.defer(entered, gate)
    assert entered.wait(_WAIT_S)
    rig.proxy.crash.defer()
    behind = request(side=Side.SELL, price="60100")
    future = rig.place(behind)  # queued behind the crash: pykka would drop it with the dead inbox
    gate.set()
    assert rig.restarted.wait(_WAIT_S)
    [create] = rig.gateway.creates(1)
    assert create.params["side"] == "SELL" and create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "NEW")))
    assert isinstance(future.result(_WAIT_S), Accepted)


def test_callers_of_a_pair_that_is_not_restarted_are_answered_after_the_grace() -> None:
    rig = _Rig(restart=False)
    waiting = rig.place(request())
    rig.gateway.creates(1)
    entered, gate = threading.Event(), threading.Event()
    rig.proxy.hold.defer(entered, gate)
    assert entered.wait(_WAIT_S)
    rig.proxy.crash.defer()
    never_taken = rig.place(request(side=Side.SELL))
    gate.set()
    assert rig.crashed.wait(_WAIT_S)
    rig.ticker.advance(ORPHAN_GRACE_MS - 1)
    assert not waiting.done() and not never_taken.done()
    rig.ticker.advance(1)
    first = waiting.result(_WAIT_S)
    assert isinstance(first, Refusal) and first.reason is RefusalReason.OUTCOME_UNKNOWN  # it may be live
    second = never_taken.result(_WAIT_S)
    assert isinstance(second, Refusal) and second.reason is RefusalReason.HALTED  # nothing was sent


def test_the_supervisor_can_answer_the_callers_of_a_pair_it_gives_up_on_at_once() -> None:
    rig = _Rig(restart=False)
    waiting = rig.place(request())
    rig.gateway.creates(1)
    rig.proxy.crash.defer()
    assert rig.crashed.wait(_WAIT_S)
    assert release_callers(rig.book, "restart budget exhausted") == 1
    outcome = waiting.result(0)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.OUTCOME_UNKNOWN
    assert "restart budget exhausted" in outcome.message


def test_requests_queued_behind_a_stop_are_answered() -> None:
    rig = _Rig()
    entered, gate = threading.Event(), threading.Event()
    rig.proxy.hold.defer(entered, gate)
    assert entered.wait(_WAIT_S)
    stopped = rig.refs[-1].stop(block=False)
    future = rig.place(request())
    gate.set()
    stopped.get(timeout=_WAIT_S)
    outcome = future.result(_WAIT_S)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.SHUTTING_DOWN


class _Broken:
    def check_trade_allowed(self, req: OrderRequest, snapshot: RiskSnapshot) -> Decision:
        if req.side is Side.SELL:
            raise RuntimeError("a bug in a custom risk manager")
        return Decision.allow()


def test_any_failure_at_intake_refuses_the_request_and_the_actor_lives_on() -> None:
    rig = _Rig(risk=_Broken())
    outcome = rig.place(request(side=Side.SELL)).result(_WAIT_S)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.INVALID_REQUEST
    assert not rig.crashed.is_set() and len(rig.refs) == 1
    assert rig.proxy.active_requests().get(timeout=_WAIT_S) == []
    rig.place(request())
    rig.gateway.creates(1)


def test_a_caller_whose_create_is_unanswered_at_the_stop_hears_outcome_unknown_not_shutting_down() -> None:
    # Its create left (or is queued): the order may exist. "Shutting down" means nothing was executed, and a
    # caller told that might place the request again under a new key: a duplicate.
    rig = _Rig()
    future = rig.place(request())
    rig.gateway.creates(1)
    rig.refs[-1].stop(timeout=_WAIT_S)
    outcome = future.result(_WAIT_S)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.OUTCOME_UNKNOWN, outcome
    assert "may exist" in outcome.message


def test_records_of_the_message_that_crashed_are_stored_by_the_restarted_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    # The create's answer carries a fill; the book applies it, then a bug raises before its records are carried
    # out. The book knows the fill (a refetch would add nothing): the restarted actor stores it again.
    from engine.domain import Fill, Order
    from engine.pair._plans import PlanBook

    saved: list[Any] = []
    monkeypatch.setattr(_Store, "save_many", lambda self, records: saved.extend(records))
    original = PlanBook._leg_filled
    raised: list[bool] = []

    def buggy(self: PlanBook, leg: Any, fill: Any, now_ms: int) -> None:
        if not raised:
            raised.append(True)
            raise RuntimeError("a bug after the fill was applied (test)")
        original(self, leg, fill, now_ms)

    monkeypatch.setattr(PlanBook, "_leg_filled", buggy)
    rig = _Rig()
    rig.place(request())
    [create] = rig.gateway.creates(1)
    assert create.reply_to is not None
    create.reply_to(GatewayResult(create, data=order_json(create, "FILLED", "0.01", [("60000", "0.01")])))
    assert rig.restarted.wait(_WAIT_S)
    rig.proxy.active_requests().get(timeout=_WAIT_S)  # the new actor has run its start-up
    fills = [r for r in saved if isinstance(r, Fill)]
    assert [f.client_order_id for f in fills] == [create.key]
    orders = [r for r in saved if isinstance(r, Order) and r.client_order_id == create.key]
    assert orders and orders[-1].status is OrderStatus.FILLED and orders[-1].filled == Decimal("0.01")
