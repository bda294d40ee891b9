"""The write-ahead gate inside the gateway: a stuck commit lends its slot, a long wait is signed again; and
response counters are charged to the window their request was sent in."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import ccxt
import pytest

from actors.gateway import GatewayActor, GatewayCore, GatewaySettings
from engine.clock import ManualClock, SystemClock
from engine.domain import Priority
from engine.exchange._ratebudget import Admit, EndpointKind, RateBudget
from engine.exchange._retry import BackoffPolicy
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.venue import ResponseHook, make_client, pass_gate
from sim import SimConfig, Simulator
from tests.gateway._barriers import turns_until
from tests.gateway._gated import NEAR_BOUNDARY, _GatedClient


class _StraddleClient:
    """A lookup sent in minute N is answered in minute N+1 with minute N's weight count (5399 of 6000)."""

    def __init__(self, hook: ResponseHook, clock: ManualClock) -> None:
        self._hook, self._clock = hook, clock
        self.options: dict[str, Any] = {}

    async def private_get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._clock.advance(100)
        self._hook(200, {"X-MBX-USED-WEIGHT-1M": "5399"}, "GET", "/api/v3/order")
        return {}

    async def close(self) -> None:
        return None


def test_a_count_from_the_previous_minute_is_not_charged_to_the_new_one() -> None:
    clock = ManualClock(NEAR_BOUNDARY)
    budget = RateBudget()  # 6000 a minute, 10 % margin

    async def run() -> None:
        core = GatewayCore(lambda hook: _StraddleClient(hook, clock), clock=clock, budget=budget)
        await core.start(sync_time=False)
        core.enqueue(GatewayRequest(Op.FETCH_ORDER, {"symbol": "BTCUSDT"}, Priority.FALLBACK))
        await asyncio.wait_for(core.wait_idle(), 5)
        await core.close()

    asyncio.run(run())
    now = clock.now_ms()
    assert budget.used(budget.limits[0], now) < 100
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, now), Admit)


def test_a_create_stuck_at_its_gate_does_not_hold_back_a_cancel() -> None:
    async def run() -> tuple[GatewayResult, int]:
        core = GatewayCore(_GatedClient, clock=ManualClock(NEAR_BOUNDARY), budget=RateBudget(()), max_in_flight=1)
        await core.start(sync_time=False)
        stuck: concurrent.futures.Future[None] = concurrent.futures.Future()  # its commit never ends
        core.enqueue(GatewayRequest(Op.CREATE_ORDER, {}, Priority.ENTRY, key="bx-stuck", gate=stuck))
        cancelled: asyncio.Future[GatewayResult] = asyncio.get_running_loop().create_future()
        core.enqueue(GatewayRequest(Op.CANCEL_ORDER, {}, Priority.CANCEL, key="cancel", reply_to=cancelled.set_result))
        result = await asyncio.wait_for(cancelled, 10)
        in_flight = core.stats().in_flight  # the parked create still counts as under way
        stuck.set_result(None)
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return result, in_flight

    result, in_flight = asyncio.run(run())
    assert result.ok and in_flight == 1


@pytest.mark.parametrize("commit_fails", [False, True])
def test_a_request_sent_while_a_create_waits_at_its_gate_does_not_inherit_that_gate(commit_fails: bool) -> None:
    # The cancel's task is started by the parking create (its slot lent): in that create's context, whose gate it
    # inherited. It then waited for the create's commit — and was dropped as "not sent" when the commit failed —
    # and the in-flight count went negative (the wait for an idle gateway never ended).
    async def run() -> tuple[GatewayResult, int, int]:
        core = GatewayCore(_GatedClient, clock=ManualClock(NEAR_BOUNDARY), budget=RateBudget(()), max_in_flight=1)
        await core.start(sync_time=False)
        commit: concurrent.futures.Future[None] = concurrent.futures.Future()
        core.enqueue(GatewayRequest(Op.CREATE_ORDER, {}, Priority.ENTRY, key="bx-parked", gate=commit))
        # One slot: the cancels wait for it, and the create, parking at its gate, starts them from its own task.
        cancelled: asyncio.Future[GatewayResult] = asyncio.get_running_loop().create_future()
        core.enqueue(GatewayRequest(Op.CANCEL_ORDER, {}, Priority.CANCEL, key="cancel", reply_to=cancelled.set_result))
        core.enqueue(GatewayRequest(Op.CANCEL_ORDER, {}, Priority.CANCEL, key="cancel-2"))
        result = await asyncio.wait_for(cancelled, 10)  # while the commit is still pending
        if commit_fails:
            commit.set_exception(RuntimeError("the database refused the intent"))
        else:
            commit.set_result(None)
        await asyncio.wait_for(core.wait_idle(), 10)
        counts = core._in_flight, core._parked
        await core.close()
        return result, *counts

    result, in_flight, parked = asyncio.run(run())
    assert result.ok and (in_flight, parked) == (0, 0)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=11, start_prices={"BTCUSDT": Decimal(60000)})) as simulator:
        yield simulator


def test_a_create_held_long_at_its_gate_is_signed_again(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every wait counts as long here: the create is signed before the gate opens, then again once it has.
    monkeypatch.setattr("engine.venue._gate.STALE_AFTER_S", -1.0)
    account = sim.accounts[0]
    signed: list[int] = []

    def client(hook: ResponseHook) -> Any:
        c = make_client("binance", api_key=account.api_key, secret=account.secret, rest_base=sim.urls.rest,
                        on_response=hook)  # fmt: skip
        sign = c.sign

        def counting_sign(*args: Any, **kwargs: Any) -> Any:
            request = sign(*args, **kwargs)
            if "order" in str(args[0]):
                query = parse_qs(str(request["body"] or request["url"].partition("?")[2]))
                signed.append(int(query["timestamp"][0]))
                if len(signed) == 1:
                    first_signed.set()
            return request

        c.sign = counting_sign
        return c

    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
              "price": "30000", "newClientOrderId": "bx-held-at-gate", "newOrderRespType": "FULL"}  # fmt: skip

    async def run() -> GatewayResult:
        core = GatewayCore(client, clock=SystemClock())
        await core.start(sync_time=False)
        durable: concurrent.futures.Future[None] = concurrent.futures.Future()
        done: asyncio.Future[GatewayResult] = asyncio.get_running_loop().create_future()
        core.enqueue(GatewayRequest(Op.CREATE_ORDER, params, Priority.ENTRY, key="bx-held-at-gate",
                                    reply_to=done.set_result, gate=durable))  # fmt: skip
        await asyncio.wait_for(first_signed.wait(), 10)
        durable.set_result(None)  # the commit is done only after the first signature
        result = await asyncio.wait_for(done, 10)
        await core.close()
        return result

    first_signed = asyncio.Event()
    result = asyncio.run(run())
    assert result.ok, result.error
    assert len(signed) == 2 and signed[1] >= signed[0]
    assert [o["clientOrderId"] for o in sim.control.ledger()["orders"]].count("bx-held-at-gate") == 1


class _RecordingClient:
    """Records what leaves (after the gate, as the engine's client does)."""

    def __init__(self, hook: ResponseHook) -> None:
        self.options: dict[str, Any] = {}
        self.left: list[str] = []

    async def private_post_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        await pass_gate()
        self.left.append(params["newClientOrderId"])
        return {}

    async def close(self) -> None:
        return None


def test_a_gated_create_through_the_handles_call_waits_for_its_commit() -> None:
    clients: list[_RecordingClient] = []

    def factory(hook: ResponseHook) -> _RecordingClient:
        clients.append(_RecordingClient(hook))
        return clients[-1]

    ref = GatewayActor.start(GatewaySettings(), clock=SystemClock(), client_factory=factory, sync_time=False)
    try:
        handle = ref.proxy().handle().get(timeout=10)
        failed: concurrent.futures.Future[None] = concurrent.futures.Future()
        failed.set_exception(RuntimeError("the intent could not be stored"))
        handle.call(
            GatewayRequest(Op.CREATE_ORDER, {"newClientOrderId": "bx-gated"}, Priority.ENTRY, key="a", gate=failed)
        )
        # Queued after it at the same priority: once this one is answered, the gated one was dealt with.
        handle.call(GatewayRequest(Op.CREATE_ORDER, {"newClientOrderId": "bx-free"}, Priority.ENTRY, key="b")).result(
            10
        )
        assert clients[0].left == ["bx-free"]
    finally:
        ref.stop(timeout=10)


class _SkewedClient:
    """Each lookup's first attempt gets -1021 at the moment another request got a 429 (Retry-After 30 s)."""

    def __init__(self, hook: ResponseHook) -> None:
        self._hook = hook
        self.options: dict[str, Any] = {}
        self.time_calls = 0
        self.failed: set[str] = set()

    async def private_get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        cid = params["origClientOrderId"]
        if cid not in self.failed:
            self.failed.add(cid)
            # Another request's 429 (outside this call's context), then this one's own answer: 400, -1021.
            contextvars.Context().run(self._hook, 429, {"Retry-After": "30"}, "GET", "/api/v3/order")
            self._hook(400, {}, "GET", "/api/v3/order")
            raise ccxt.InvalidNonce(
                'binance {"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}'
            )
        return {}

    async def public_get_time(self) -> dict[str, Any]:
        self.time_calls += 1
        # The server agrees with the host's wall clock, against which the offset is measured.
        return {"serverTime": SystemClock().now_ms()}

    async def close(self) -> None:
        return None


def test_clock_resync_after_1021_is_one_call_and_waits_out_a_retry_after_block() -> None:
    clients: list[_SkewedClient] = []

    def factory(hook: ResponseHook) -> _SkewedClient:
        clients.append(_SkewedClient(hook))
        return clients[-1]

    async def run() -> tuple[int, int, list[GatewayResult]]:
        clock = ManualClock(NEAR_BOUNDARY)
        core = GatewayCore(
            factory, clock=clock, budget=RateBudget(()), backoff=BackoffPolicy(base_s=0.001, cap_s=0.002)
        )
        await core.start(sync_time=False)
        results: list[GatewayResult] = []
        for cid in ("bx-a", "bx-b"):
            core.enqueue(GatewayRequest(Op.FETCH_ORDER, {"origClientOrderId": cid}, Priority.FALLBACK, key=cid,
                                        reply_to=results.append))  # fmt: skip
        block_checks = []
        blocked_until = core.budget.blocked_until_ms
        core.budget.blocked_until_ms = lambda: block_checks.append(1) or blocked_until()  # type: ignore[method-assign]
        # Barrier: both failed and the one re-sync found the block (it then waits for it; no time passes here).
        await turns_until(lambda: len(clients[0].failed) == 2 and bool(block_checks), "the re-sync met the block")
        during_block = clients[0].time_calls
        clock.set(NEAR_BOUNDARY + 30_000)  # the Retry-After block is over
        core.wake()
        # Re-synced, both wait out their retry backoff on the manual clock: move it past the deadlines.
        deadlines = await asyncio.wait_for(core.wait_retrying(2), 10)
        clock.set(max(deadlines))
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return during_block, clients[0].time_calls, results

    during_block, after, results = asyncio.run(run())
    assert len(clients[0].failed) == 2
    assert during_block == 0, "the clock re-sync went out during a Retry-After block"
    assert after == 1, f"{after} re-syncs for one clock fault"
    assert sorted(r.request.key for r in results) == ["bx-a", "bx-b"] and all(r.ok for r in results)


def test_a_create_whose_gate_opens_in_the_next_order_window_is_counted_there() -> None:
    from engine.exchange._ratebudget import LimitKind, RateLimit

    orders = RateLimit(LimitKind.ORDERS, 10_000, 50)
    end_of_window = NEAR_BOUNDARY - NEAR_BOUNDARY % 10_000 + 9_990
    clock = ManualClock(end_of_window)
    budget = RateBudget((orders,), margin=0)

    async def run() -> None:
        core = GatewayCore(_GatedClient, clock=clock, budget=budget)
        await core.start(sync_time=False)
        commit: concurrent.futures.Future[None] = concurrent.futures.Future()
        core.enqueue(GatewayRequest(Op.CREATE_ORDER, {}, Priority.ENTRY, key="bx-late", gate=commit))
        await turns_until(lambda: core._parked == 1, "parked at its gate")  # admitted in the window that is ending
        assert budget.used(orders, clock.now_ms()) == 1
        clock.advance(20)  # the commit ends in the next window: the create leaves there
        commit.set_result(None)
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()

    asyncio.run(run())
    assert budget.used(orders, clock.now_ms()) == 1
