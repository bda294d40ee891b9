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
from tests.gateway._barriers import GateAsks, turns_until

MINUTE = 60_000
NEAR_BOUNDARY = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE + MINUTE - 50  # 50 ms before a new minute


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


class _GatedClient:
    """Every request passes the gate of its call, as the engine's client does (`engine.venue._client`): a create
    waits there for its commit; a cancel has none and answers at once."""

    def __init__(self, hook: ResponseHook) -> None:
        self.options: dict[str, Any] = {}

    async def private_post_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        await pass_gate()
        return {}

    async def private_delete_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        await pass_gate()
        return {}

    async def close(self) -> None:
        return None


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
    from engine.exchange._ratebudget import LimitKind, RateLimit

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
            if n % 10 == 9:
                clock.advance(10_000)
        await turns_until(lambda: core._parked == 30, "all parked at their gates")
        asks = GateAsks(budget)
        commit.set_result(None)
        await turns_until(lambda: asks.asks >= 30, "every create asked to leave")  # those told yes left then
        first_window = len(clients[0].left)
        clock.advance(10_000)
        core.wake()
        await turns_until(lambda: asks.asks >= 50, "the 20 told to wait asked again")
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
    # daily -1015 hold, the cancels queued behind it waited too.
    clock = ManualClock(NEAR_BOUNDARY)
    clients: list[_SendingClient] = []

    async def run() -> tuple[bool, list[str]]:
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1], clock=clock,
                           budget=RateBudget(()), max_in_flight=1)  # fmt: skip
        await core.start(sync_time=False)
        durable: concurrent.futures.Future[None] = concurrent.futures.Future()
        durable.set_result(None)
        core.enqueue(_gated_create("bx-held", durable))
        core.budget.on_throttled(http_status=429, retry_after_s=3600, now_ms=core._server_now(), orders_only=True)
        cancelled: asyncio.Future[GatewayResult] = asyncio.get_running_loop().create_future()
        core.enqueue(GatewayRequest(Op.CANCEL_ORDER, {}, Priority.CANCEL, key="cancel", reply_to=cancelled.set_result))
        result = await asyncio.wait_for(cancelled, 10)
        clock.advance(3_600_000)
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return result.ok, clients[0].left

    ok, left = asyncio.run(run())
    assert ok and left == ["bx-held"]
