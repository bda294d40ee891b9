"""Behaviour a mutation test of the gateway found unpinned (each test failed with its mutant applied)."""

from __future__ import annotations

import asyncio
import concurrent.futures

from actors.gateway import GatewayCore
from engine.clock import ManualClock
from engine.domain import Priority
from engine.exchange import AuthFailed, Rejected
from engine.exchange._ratebudget import RateBudget
from engine.gateway import OP_SPECS, GatewayRequest, GatewayResult, Op
from engine.venue import CANCELED_BEFORE_SENT
from tests.gateway._barriers import turns_until
from tests.gateway._gated import NEAR_BOUNDARY
from tests.gateway.test_gate_holds import _SendingClient


def test_a_create_withdrawn_while_it_waits_for_a_slot_after_its_commit_never_leaves() -> None:
    # G29 (_core.py:376): committed, then held by a -1015 hold waiting in the queue for a slot; the caller
    # cancels it there; when the hold ends it must not leave.
    clock = ManualClock(NEAR_BOUNDARY)
    clients: list[_SendingClient] = []
    answers: dict[str, GatewayResult] = {}

    async def run() -> None:
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1], clock=clock,
                           budget=RateBudget(()))  # fmt: skip
        await core.start(sync_time=False)
        commit: concurrent.futures.Future[None] = concurrent.futures.Future()
        core.enqueue(GatewayRequest(Op.CREATE_ORDER, {"newClientOrderId": "c1"}, Priority.ENTRY, key="c1",
                                    reply_to=lambda r: answers.__setitem__("c1", r), gate=commit))  # fmt: skip
        await turns_until(lambda: core._parked == 1, "parked at its gate")
        core.budget.on_throttled(http_status=429, retry_after_s=5, now_ms=core._server_now(), orders_only=True)
        commit.set_result(None)
        await turns_until(lambda: core._parked == 0 and len(core._queue) == 1, "back in the queue for a slot")
        core.withdraw_create("c1")
        clock.advance(6_000)
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()

    asyncio.run(run())
    assert clients[0].left == []
    error = answers["c1"].error
    assert isinstance(error, Rejected) and str(error) == CANCELED_BEFORE_SENT, answers["c1"]


class _AuthFailClient(_SendingClient):
    async def private_delete_order(self, params):  # type: ignore[no-untyped-def]
        import ccxt

        raise ccxt.AuthenticationError('binance {"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}')


def test_a_stop_trading_error_is_told_to_on_critical() -> None:
    # F08 (_feedback.py:225): AuthFailed/Banned are StopTrading: the engine must be told, to halt new orders.
    clock = ManualClock(NEAR_BOUNDARY)
    critical: list[object] = []

    async def run() -> None:
        core = GatewayCore(_AuthFailClient, clock=clock, budget=RateBudget(()), on_critical=critical.append)
        await core.start(sync_time=False)
        core.enqueue(GatewayRequest(Op.CANCEL_ORDER, {"origClientOrderId": "x"}, Priority.EXIT, key="x"))
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()

    asyncio.run(run())
    assert len(critical) == 1 and isinstance(critical[0], AuthFailed), critical


def _timer_in_s(core: GatewayCore) -> float:
    assert core._budget_timer is not None and core._loop is not None
    return core._budget_timer.when() - core._loop.time()


def test_a_request_held_by_the_budget_is_retried_when_its_wait_ends_on_the_loop_s_timer() -> None:
    # G12 (_core.py:225): on a real clock only the budget timer sends a held request again; it must be due
    # when the wait ends (a ManualClock's moves pump by themselves and hide the timer).
    from engine.exchange._ratebudget import LimitKind, RateLimit

    minute = NEAR_BOUNDARY - NEAR_BOUNDARY % 60_000
    clock = ManualClock(minute + 58_000)  # 2 s before the next minute

    async def run() -> tuple[float, float]:
        budget = RateBudget((RateLimit(LimitKind.REQUEST_WEIGHT, 60_000, 10),), margin=0)
        core = GatewayCore(_SendingClient, clock=clock, budget=budget)
        await core.start(sync_time=False)
        core.budget.reserve(OP_SPECS[Op.FETCH_ORDER].endpoint, core._server_now(), weight=8)  # 8 of 10 used
        # A lookup needing 5 waits for the new minute (2 s); a create ahead of it, held by a -1015 for 8 s.
        core.budget.on_throttled(http_status=429, retry_after_s=8, now_ms=core._server_now(), orders_only=True)
        core.enqueue(GatewayRequest(Op.CREATE_ORDER, {"newClientOrderId": "c"}, Priority.FALLBACK, key="c"))
        core.enqueue(GatewayRequest(Op.FETCH_ORDER, {"origClientOrderId": "x"}, Priority.ENTRY, key="x", weight=5))
        first = _timer_in_s(core)
        core._dispatching = False
        await core.close()
        return first, 0.0

    first, _ = asyncio.run(run())
    assert 1.5 < first <= 2.05, first  # G12: 10x late; G10: 8 s (the create's hold) instead of the lookup's 2 s
