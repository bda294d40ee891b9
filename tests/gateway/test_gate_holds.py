"""The gateway holds a create from its hand-over until its answer was told, and creates parked at their
write-ahead gates leave only as their order window and any Retry-After block allow, never after the stop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from typing import Any

from actors.gateway import GatewayCore
from engine.clock import ManualClock
from engine.domain import Priority
from engine.exchange._ratebudget import RateBudget
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.venue import ResponseHook, pass_gate
from tests.gateway._barriers import GateAsks, turns_until
from tests.gateway._gated import NEAR_BOUNDARY, _GatedClient


def test_a_create_is_held_from_its_hand_over_until_its_answer_was_told() -> None:
    # A pair actor restarted over an unacknowledged create asks `holds_create` before it looks the order up.
    from types import SimpleNamespace

    from actors.gateway import GatewayHandle

    async def run() -> tuple[list[bool], bool, bool]:
        core = GatewayCore(_GatedClient, clock=ManualClock(NEAR_BOUNDARY), budget=RateBudget(()))
        await core.start(sync_time=False)
        handed = GatewayHandle(SimpleNamespace(call_soon=lambda _fn: None), core)  # type: ignore[arg-type]
        handed.submit(GatewayRequest(Op.CREATE_ORDER, {}, Priority.ENTRY, key="bx-handed"))
        told: list[bool] = []
        commit: concurrent.futures.Future[None] = concurrent.futures.Future()
        reply = lambda _r: told.append("bx-held" in core.pending_creates)  # noqa: E731
        core.enqueue(GatewayRequest(Op.CREATE_ORDER, {}, Priority.ENTRY, key="bx-held", reply_to=reply, gate=commit))
        failing: concurrent.futures.Future[None] = concurrent.futures.Future()
        core.enqueue(GatewayRequest(Op.CREATE_ORDER, {}, Priority.ENTRY, key="bx-unsent", gate=failing))
        await turns_until(lambda: core._parked == 2, "both parked at their gates")
        assert "bx-held" in core.pending_creates and "bx-unsent" in core.pending_creates
        assert handed.holds_create("bx-handed")  # handed over, not even queued yet
        commit.set_result(None)
        failing.set_exception(RuntimeError("the database refused the intent"))
        await asyncio.wait_for(core.wait_idle(), 10)
        held, unsent = "bx-held" in core.pending_creates, "bx-unsent" in core.pending_creates
        await core.close()
        return told, held, unsent

    told, held, unsent = asyncio.run(run())
    assert told == [True]  # still held while its answer was told: a lookup after it finds the answer applied
    assert not held and not unsent


class _SendingClient(_GatedClient):
    """A `_GatedClient` that records the creates that passed their gate (left for the exchange)."""

    def __init__(self, hook: ResponseHook) -> None:
        super().__init__(hook)
        self.left: list[str] = []

    async def private_post_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        await pass_gate()
        self.left.append(params["newClientOrderId"])
        return {}


def _gated_create(cid: str, gate: concurrent.futures.Future[None]) -> GatewayRequest:
    return GatewayRequest(Op.CREATE_ORDER, {"newClientOrderId": cid}, Priority.ENTRY, key=cid, gate=gate)


def test_a_create_whose_commit_ends_during_a_retry_after_block_waits_it_out() -> None:
    # Admitted, then parked at its gate; meanwhile another request got a 429. It left at once when its commit
    # ended: sending during a Retry-After is what Binance turns into a 418 ban.
    clock = ManualClock(NEAR_BOUNDARY)
    clients: list[_SendingClient] = []

    async def run() -> tuple[list[str], list[str]]:
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1], clock=clock,
                           budget=RateBudget(()))  # fmt: skip
        await core.start(sync_time=False)
        commit: concurrent.futures.Future[None] = concurrent.futures.Future()
        core.enqueue(_gated_create("bx-parked", commit))
        await turns_until(lambda: core._parked == 1, "parked at its gate")
        asks = GateAsks(core.budget)
        core.budget.on_throttled(http_status=429, retry_after_s=30, now_ms=core._server_now())
        commit.set_result(None)
        await turns_until(lambda: asks.waits >= 1, "its commit done, the budget told it to wait")  # no time passes
        during = list(clients[0].left)
        clock.advance(30_000)
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return during, clients[0].left

    during, after = asyncio.run(run())
    assert during == [] and after == ["bx-parked"]


def test_creates_piled_up_at_their_gates_leave_no_more_than_their_order_window_allows() -> None:
    # A stalled commit: creates admitted in window after window wait at their gates, holding no slot; when the
    # commit ends they all left in one 10 s window, far past Binance's 50 (each then a 429 -1015).
    from engine.exchange._ratebudget import ORDER_WINDOW_GUARD_MS, LimitKind, RateLimit

    orders = RateLimit(LimitKind.ORDERS, 10_000, 10)
    clock = ManualClock(NEAR_BOUNDARY - NEAR_BOUNDARY % 10_000)
    clients: list[_SendingClient] = []

    async def run() -> tuple[int, int]:
        budget = RateBudget((orders,), margin=0)
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1], clock=clock,
                           budget=budget)  # fmt: skip
        await core.start(sync_time=False)
        commit: concurrent.futures.Future[None] = concurrent.futures.Future()
        for n in range(30):  # 10 admitted (at the hand-over) in each of three windows, all for the same commit
            core.enqueue(_gated_create(f"bx-{n}", commit))
            if n % 10 == 9:  # the next window, past its first moments (while the last one is full, creates wait)
                clock.advance(10_000 + ORDER_WINDOW_GUARD_MS)
        await turns_until(lambda: core._parked == 30, "all parked at their gates")
        asks = GateAsks(budget)
        commit.set_result(None)
        # Back from their gates, each left or waits in the queue for the budget (and a slot): none is on its way.
        settled = lambda: core._parked == 0 and len(clients[0].left) + core.stats().queued == 30  # noqa: E731
        await turns_until(lambda: asks.waits >= 1 and settled(), "every create left or was told to wait")
        first_window = len(clients[0].left)
        waits = asks.waits
        clock.advance(10_000)
        core.wake()
        await turns_until(lambda: asks.waits > waits and settled(), "those told to wait asked again")
        second_window = len(clients[0].left) - first_window
        clock.advance(20_000)
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return first_window, second_window

    first_window, second_window = asyncio.run(run())
    assert first_window == 10 and second_window == 10
    assert len(clients[0].left) == 30


def test_a_create_whose_commit_ends_while_the_gateway_stops_is_not_sent() -> None:
    # The shutdown canceled the open orders and stopped the pair actors first: a create leaving now would rest
    # at the exchange with nobody to take its answer.
    clients: list[_SendingClient] = []

    async def run() -> list[str]:
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1],
                           clock=ManualClock(NEAR_BOUNDARY), budget=RateBudget(()))  # fmt: skip
        await core.start(sync_time=False)
        commit: concurrent.futures.Future[None] = concurrent.futures.Future()
        core.enqueue(_gated_create("bx-late", commit))
        await turns_until(lambda: core._parked == 1, "parked at its gate")
        closing = asyncio.ensure_future(core.close())
        await turns_until(lambda: not core._dispatching, "the close began")
        commit.set_result(None)
        await asyncio.wait_for(closing, 10)
        return clients[0].left

    assert asyncio.run(run()) == []


def test_a_create_whose_commit_was_done_before_its_gate_lends_its_slot_while_a_hold_keeps_it() -> None:
    # It never parked (nothing to wait for at the gate), then waited for the budget holding its slot: through a
    # -1015 hold, the cancels queued behind it waited too.
    clock = ManualClock(NEAR_BOUNDARY)
    clients: list[_SendingClient] = []

    async def run() -> tuple[bool, list[str]]:
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1], clock=clock,
                           budget=RateBudget(()), max_in_flight=1)  # fmt: skip
        await core.start(sync_time=False)
        durable: concurrent.futures.Future[None] = concurrent.futures.Future()
        durable.set_result(None)
        core.enqueue(_gated_create("bx-held", durable))
        core.budget.on_throttled(http_status=429, retry_after_s=60, now_ms=core._server_now(), orders_only=True)
        cancelled: asyncio.Future[GatewayResult] = asyncio.get_running_loop().create_future()
        core.enqueue(GatewayRequest(Op.CANCEL_ORDER, {}, Priority.CANCEL, key="cancel", reply_to=cancelled.set_result))
        result = await asyncio.wait_for(cancelled, 10)
        clock.advance(60_000)
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return result.ok, clients[0].left

    ok, left = asyncio.run(run())
    assert ok and left == ["bx-held"]


class _SigningClient(_SendingClient):
    """Signs (the `released` event) before it reaches the gate, as ccxt does: the commit may be done by then."""

    def __init__(self, hook: ResponseHook) -> None:
        super().__init__(hook)
        self.signing = asyncio.Event()
        self.released = asyncio.Event()

    async def private_post_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self.signing.set()
        await self.released.wait()
        return await super().private_post_order(params)


def test_a_create_that_kept_its_slot_waits_out_a_retry_after_begun_while_it_was_signed() -> None:
    # Its commit was durable before it reached its gate, so it never parked: it asks the budget there with its slot.
    # A 429 that began meanwhile must hold it (a mutation test found this path unpinned: sent at once, it is what
    # Binance turns into a 418 ban).
    clock = ManualClock(NEAR_BOUNDARY)
    clients: list[_SigningClient] = []

    async def run() -> tuple[list[str], list[str]]:
        core = GatewayCore(lambda hook: clients.append(_SigningClient(hook)) or clients[-1], clock=clock,
                           budget=RateBudget(()))  # fmt: skip
        await core.start(sync_time=False)
        commit: concurrent.futures.Future[None] = concurrent.futures.Future()
        commit.set_result(None)
        core.enqueue(_gated_create("bx-signed", commit))
        await asyncio.wait_for(clients[0].signing.wait(), 10)
        asks = GateAsks(core.budget)
        core.budget.on_throttled(http_status=429, retry_after_s=30, now_ms=core._server_now())
        clients[0].released.set()
        await turns_until(lambda: asks.waits >= 1, "at its gate, the budget told it to wait")
        during = list(clients[0].left)
        clock.advance(30_000)
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return during, clients[0].left

    during, after = asyncio.run(run())
    assert during == [] and after == ["bx-signed"]
