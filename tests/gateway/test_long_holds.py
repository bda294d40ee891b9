"""A create the order limits would hold past `max_create_hold_ms` (a daily order count reached, a long ban) is not
sent: answered rejected at once, with when orders may go again, and the engine told (`OrderLimitReached`) — a
daily -1015 held every create until 00:00 UTC, the fallbacks of timed-out limits with them, all traded then."""

from __future__ import annotations

import asyncio
import concurrent.futures

from actors.gateway import GatewayCore
from engine.clock import ManualClock
from engine.domain import Priority
from engine.exchange import ExchangeError, OrderLimitReached, Rejected
from engine.exchange._ratebudget import RateBudget
from engine.gateway import GatewayRequest, GatewayResult, Op
from tests.gateway._barriers import turns_until
from tests.gateway._gated import NEAR_BOUNDARY
from tests.gateway.test_gate_holds import _gated_create, _SendingClient

HOLD_MS = 300_000


def _request(op: Op, key: str, replies: list[GatewayResult], priority: Priority = Priority.ENTRY) -> GatewayRequest:
    return GatewayRequest(op, {"newClientOrderId": key}, priority, key=key, reply_to=replies.append)


def test_creates_held_past_the_limit_are_refused_at_once_and_the_engine_is_told_once() -> None:
    clock = ManualClock(NEAR_BOUNDARY)
    clients: list[_SendingClient] = []
    told: list[ExchangeError] = []

    async def run() -> tuple[list[GatewayResult], list[str], list[str]]:
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1], clock=clock,
                           budget=RateBudget(()), on_critical=told.append, max_create_hold_ms=HOLD_MS)  # fmt: skip
        await core.start(sync_time=False)
        now = core._server_now()
        core.budget.on_throttled(http_status=429, retry_after_s=None, now_ms=now, orders_only=True,
                                 window_ms=86_400_000)  # a daily -1015: until 00:00 UTC  # fmt: skip
        replies: list[GatewayResult] = []
        core.enqueue_many([_request(Op.CREATE_ORDER, "bx-entry", replies),
                           _request(Op.CREATE_ORDER, "bx-fallback", replies, Priority.FALLBACK),
                           _request(Op.CANCEL_ORDER, "cancel", replies, Priority.CANCEL)])  # fmt: skip
        await turns_until(lambda: len(replies) == 3, "every request answered")
        during = list(clients[0].left)
        clock.advance(86_400_000)  # the day is over: creates go again
        core.wake()
        core.enqueue(_request(Op.CREATE_ORDER, "bx-next-day", replies))
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return replies, during, clients[0].left

    replies, during, after = asyncio.run(run())
    by_key = {r.request.key: r for r in replies}
    assert by_key["cancel"].ok, "cancels still go under an order hold"
    for key in ("bx-entry", "bx-fallback"):
        error = by_key[key].error
        assert isinstance(error, Rejected) and "not sent: new orders are held until" in str(error), error
        assert "00:00:00 UTC" in str(error) and "max_create_hold_s (300 s)" in str(error)
    assert during == [] and after == ["bx-next-day"]
    assert len(told) == 1 and isinstance(told[0], OrderLimitReached)  # once per hold, not per create
    day_end = NEAR_BOUNDARY - NEAR_BOUNDARY % 86_400_000 + 86_400_000
    assert abs(told[0].until_ms - day_end) < 1_000  # in the engine's clock (the offset to the server's is ~0 here)


def test_a_hold_within_the_limit_is_waited_out() -> None:
    clock = ManualClock(NEAR_BOUNDARY)
    clients: list[_SendingClient] = []
    told: list[ExchangeError] = []

    async def run() -> tuple[list[str], list[str]]:
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1], clock=clock,
                           budget=RateBudget(()), on_critical=told.append, max_create_hold_ms=HOLD_MS)  # fmt: skip
        await core.start(sync_time=False)
        core.budget.on_throttled(http_status=429, retry_after_s=HOLD_MS / 1000, now_ms=core._server_now(),
                                 orders_only=True)  # fmt: skip
        replies: list[GatewayResult] = []
        core.enqueue(_request(Op.CREATE_ORDER, "bx-1", replies))
        await turns_until(lambda: core.stats().queued == 1, "queued behind the hold")
        during = list(clients[0].left)
        clock.advance(HOLD_MS)
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return during, clients[0].left

    during, after = asyncio.run(run())
    assert during == [] and after == ["bx-1"] and told == []


def test_a_create_at_its_gate_when_a_long_hold_begins_is_refused_not_sent_later() -> None:
    # Its intent stored, it waited at its gate for its commit; the hold began meanwhile. It waited for the hold's
    # end in the queue and left then (its request timed out long before, its fallback behind it).
    clock = ManualClock(NEAR_BOUNDARY)
    clients: list[_SendingClient] = []
    told: list[ExchangeError] = []

    async def run() -> tuple[list[GatewayResult], list[str], int]:
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1], clock=clock,
                           budget=RateBudget(()), on_critical=told.append, max_create_hold_ms=HOLD_MS)  # fmt: skip
        await core.start(sync_time=False)
        commit: concurrent.futures.Future[None] = concurrent.futures.Future()
        replies: list[GatewayResult] = []
        request = _gated_create("bx-gated", commit)
        core.enqueue(GatewayRequest(request.op, request.params, request.priority, key=request.key,
                                    gate=commit, reply_to=replies.append))  # fmt: skip
        await turns_until(lambda: core._parked == 1, "parked at its gate")
        core.budget.on_throttled(http_status=418, retry_after_s=3_600, now_ms=core._server_now())  # a long ban
        commit.set_result(None)
        await turns_until(lambda: len(replies) == 1, "answered")
        clock.advance(3_600_000)
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 10)
        in_flight = core.stats().in_flight
        await core.close()
        return replies, clients[0].left, in_flight

    replies, left, in_flight = asyncio.run(run())
    error = replies[0].error
    assert isinstance(error, Rejected) and "not sent: new orders are held until" in str(error), error
    assert left == [] and in_flight == 0  # never sent, and its slot given back
    assert len(told) == 1 and isinstance(told[0], OrderLimitReached)


def test_creates_behind_a_cancel_under_a_long_ban_are_refused_too() -> None:
    # Every request waits; the cancel at the head of the queue stopped the pump before any create was looked at:
    # the create waited out the hour's ban and was traded when it ended (found by a review of the change).
    clock = ManualClock(NEAR_BOUNDARY)
    clients: list[_SendingClient] = []
    told: list[ExchangeError] = []

    async def run() -> tuple[list[GatewayResult], list[str]]:
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1], clock=clock,
                           budget=RateBudget(()), on_critical=told.append, max_create_hold_ms=HOLD_MS)  # fmt: skip
        await core.start(sync_time=False)
        core.budget.on_throttled(http_status=418, retry_after_s=3_600, now_ms=core._server_now())  # an hour's ban
        replies: list[GatewayResult] = []
        core.enqueue_many([_request(Op.CANCEL_ORDER, "cancel", replies, Priority.CANCEL),
                           _request(Op.CREATE_ORDER, "bx-entry", replies),
                           _request(Op.CREATE_ORDER, "bx-exit", replies, Priority.EXIT)])  # fmt: skip
        await turns_until(lambda: len(replies) == 2, "both creates answered during the ban")
        during = [r.request.key for r in replies]
        clock.advance(3_600_000)  # the ban is over: the cancel goes
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return replies, during + clients[0].left

    replies, seen = asyncio.run(run())
    by_key = {r.request.key: r for r in replies}
    assert sorted(seen) == ["bx-entry", "bx-exit"], seen  # answered during the ban, none sent after it
    for key in ("bx-entry", "bx-exit"):
        assert isinstance(by_key[key].error, Rejected) and "not sent" in str(by_key[key].error)
    assert by_key["cancel"].ok and len(told) == 1
