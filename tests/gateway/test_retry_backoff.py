"""A retry's backoff runs on the injected clock: on a manual clock a retry goes out only once the clock passes its
deadline, however much real time passes, and at once when it does; on the system clock it waits its delay, once.
The waiting call lends its slot (a cancel behind it goes), and a stop ends the wait at once with an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from actors._ticker import Ticker
from actors.gateway import GatewayActor, GatewayCore, GatewayHandle, GatewaySettings
from engine.clock import Clock, ManualClock, SystemClock
from engine.domain import Priority
from engine.exchange import RetryLater
from engine.exchange._ratebudget import RateBudget
from engine.exchange._retry import BackoffPolicy
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.venue import ResponseHook
from sim import FaultSpec, SimConfig, Simulator
from tests.gateway._barriers import turns_until

NOW = 1_700_000_000_000
# Decorrelated jitter's first delay is drawn from [base, 3·base] and capped at base: exactly 30 s, every time.
THIRTY_S = BackoffPolicy(base_s=30, cap_s=30, jitter="decorrelated")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=7, start_prices={"BTCUSDT": Decimal(60000)})) as simulator:
        yield simulator


class _SkewLoop(asyncio.SelectorEventLoop):
    """An event loop whose time can be moved on: every real timer fires as if that much real time had passed."""

    skew_s = 0.0

    def time(self) -> float:
        return super().time() + self.skew_s


class _CountingClock(ManualClock):
    """A manual clock that counts its readings: a reading is a wait checking its deadline again."""

    reads = 0

    def now_ms(self) -> int:
        self.reads += 1
        return super().now_ms()


class _CountingSystemClock(SystemClock):
    reads = 0

    def now_ms(self) -> int:
        self.reads += 1
        return super().now_ms()


class _FlakyClient:
    """Lookups time out (retry later: retried) `failures` times, then answer; cancels answer at once."""

    def __init__(self, hook: ResponseHook, clock: Clock, failures: int = 1) -> None:
        self.options: dict[str, Any] = {}
        self._clock, self._failures = clock, failures
        self.fetches: list[int] = []  # the clock's time at each lookup sent
        self.reads_at: list[int] = []  # the counting clock's readings then
        self.cancels = 0

    async def private_get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self.reads_at.append(getattr(self._clock, "reads", 0))
        self.fetches.append(self._clock.now_ms())
        if len(self.fetches) <= self._failures:
            raise ccxt.RequestTimeout("binance GET https://api.binance.com/api/v3/order timed out")
        return {"clientOrderId": params["origClientOrderId"], "status": "NEW"}

    async def private_delete_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self.cancels += 1
        return {"origClientOrderId": params["origClientOrderId"], "status": "CANCELED"}

    async def close(self) -> None:
        return None


def _core(clock: Clock, clients: list[_FlakyClient], *, max_in_flight: int = 32, **kw: Any) -> GatewayCore:
    def factory(hook: ResponseHook) -> _FlakyClient:
        clients.append(_FlakyClient(hook, clock, **kw))
        return clients[-1]

    return GatewayCore(factory, clock=clock, budget=RateBudget(()), backoff=THIRTY_S, max_in_flight=max_in_flight)


async def _checked_again(clock: _CountingClock, act: Callable[[], None]) -> None:
    """Do `act`, then turn the loop (no time passes) until something read the clock: the wait checked again."""
    before = clock.reads
    act()
    await turns_until(lambda: clock.reads > before, "the wait checked the clock again")


def _fetch(cid: str, reply: Callable[[GatewayResult], None]) -> GatewayRequest:
    return GatewayRequest(Op.FETCH_ORDER, {"origClientOrderId": cid}, Priority.FALLBACK, key=cid, reply_to=reply)


def test_on_a_manual_clock_a_retry_waits_for_the_clock_not_for_real_time() -> None:
    clock = _CountingClock(NOW)
    clients: list[_FlakyClient] = []
    results: list[GatewayResult] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, _SkewLoop)
        core = _core(clock, clients)
        await core.start(sync_time=False)
        core.enqueue(_fetch("bx-a", results.append))
        # Barrier: the failed lookup waits out its backoff (no time passed on any clock yet).
        [due] = await asyncio.wait_for(core.wait_retrying(1), 5)
        assert due == NOW + 30_000 and core.stats().retry_at_ms == due and core.stats().retrying == 1
        for _ in range(3):  # three hours of real time: each time the wait's real timer fires and it checks again
            await _checked_again(clock, lambda: setattr(loop, "skew_s", loop.skew_s + 3600))
        await _checked_again(clock, lambda: clock.set(due - 1))  # a move wakes the gateway by itself: no `wake()`
        assert len(clients[0].fetches) == 1 and not results, "the retry went out before its deadline"
        clock.set(due)
        # Promptly: by loop turns alone (its real timer is 30 s off), as soon as the clock passed the deadline.
        await turns_until(lambda: bool(results), "the retry answered")
        assert core.stats().retrying == 0
        await core.close()

    with asyncio.Runner(loop_factory=_SkewLoop) as runner:
        runner.run(run())
    [result] = results
    assert result.ok and result.attempts == 2
    assert clients[0].fetches == [NOW, NOW + 30_000]


def test_a_cancel_queued_behind_a_waiting_retry_goes_at_once() -> None:
    clock = ManualClock(NOW)
    clients: list[_FlakyClient] = []
    results: list[GatewayResult] = []

    async def run() -> None:
        core = _core(clock, clients, max_in_flight=1)  # one slot, and the lookup waiting for its retry had it
        await core.start(sync_time=False)
        core.enqueue(_fetch("bx-a", results.append))
        await turns_until(lambda: len(clients[0].fetches) == 1, "the lookup failed")
        cancel = {"origClientOrderId": "bx-b"}
        core.enqueue(GatewayRequest(Op.CANCEL_ORDER, cancel, Priority.CANCEL, key="bx-b", reply_to=results.append))
        await turns_until(lambda: clients[0].cancels == 1, "the cancel went while the lookup waits")
        assert [r.request.key for r in results] == ["bx-b"] and len(clients[0].fetches) == 1
        clock.advance(30_000)
        await asyncio.wait_for(core.wait_idle(), 5)
        await core.close()

    asyncio.run(run())
    assert [(r.request.key, r.ok, r.attempts) for r in results] == [("bx-b", True, 1), ("bx-a", True, 2)]


@pytest.mark.parametrize("clock_kind", ["manual", "system"])
def test_a_stop_during_a_backoff_ends_at_once_and_answers_the_call(clock_kind: str) -> None:
    clock: Clock = ManualClock(NOW) if clock_kind == "manual" else SystemClock()
    clients: list[_FlakyClient] = []
    results: list[GatewayResult] = []

    async def run() -> None:
        core = _core(clock, clients)
        await core.start(sync_time=False)
        core.enqueue(_fetch("bx-a", results.append))
        await turns_until(lambda: len(clients[0].fetches) == 1, "the lookup failed")
        closing = asyncio.ensure_future(core.close())
        # By loop turns alone: no timer (the 30 s backoff, the close's bound on in-flight calls) has to fire.
        await turns_until(closing.done, "the close ended")
        closing.result()

    asyncio.run(run())
    [result] = results
    assert isinstance(result.error, RetryLater) and result.attempts == 1  # its last failure, not silence
    assert len(clients[0].fetches) == 1  # and not sent again


def test_a_stop_while_a_retry_waits_for_the_budget_ends_at_once() -> None:
    clock = ManualClock(NOW)
    clients: list[_FlakyClient] = []
    results: list[GatewayResult] = []

    async def run() -> None:
        core = _core(clock, clients)
        await core.start(sync_time=False)
        asks: list[int] = []
        reserve = core.budget.reserve

        def counted(*args: Any, **kwargs: Any) -> Any:
            asks.append(1)
            return reserve(*args, **kwargs)

        core.budget.reserve = counted  # type: ignore[method-assign]
        core.enqueue(_fetch("bx-a", results.append))
        [due] = await asyncio.wait_for(core.wait_retrying(1), 5)
        # A ban for an hour begins meanwhile: past its backoff, the retry waits for the budget.
        core.budget.on_throttled(http_status=418, retry_after_s=3600, now_ms=clock.now_ms())
        before = len(asks)
        clock.set(due)
        await turns_until(lambda: len(asks) > before and core.stats().retrying == 0, "the retry asked the budget")
        assert len(clients[0].fetches) == 1
        closing = asyncio.ensure_future(core.close())
        await turns_until(closing.done, "the close ended")
        closing.result()

    asyncio.run(run())
    [result] = results
    assert isinstance(result.error, RetryLater) and result.attempts == 1


def test_on_the_system_clock_a_retry_waits_its_delay_once() -> None:
    clock = _CountingSystemClock()
    clients: list[_FlakyClient] = []
    results: list[GatewayResult] = []

    def factory(hook: ResponseHook) -> _FlakyClient:
        clients.append(_FlakyClient(hook, clock))
        return clients[-1]

    async def run() -> None:
        backoff = BackoffPolicy(base_s=0.05, cap_s=0.05, jitter="decorrelated")  # 50 ms exactly
        core = GatewayCore(factory, clock=clock, budget=RateBudget(()), backoff=backoff)
        await core.start(sync_time=False)
        core.enqueue(_fetch("bx-a", results.append))
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()

    asyncio.run(run())
    [result] = results
    assert result.ok and result.attempts == 2
    first, second = clients[0].fetches
    assert second - first >= 50, "the retry did not wait its delay"
    # One real timer, not a poll: a handful of clock readings between the failure and the retry (a 1 ms poll
    # would read it 50 times).
    assert clients[0].reads_at[1] - clients[0].reads_at[0] < 15


def test_the_ticker_moving_a_manual_clock_lets_a_retry_go_through_the_real_client(sim: Simulator) -> None:
    clock = ManualClock(NOW)
    ticker = Ticker(clock)
    account = sim.accounts[0]
    settings = GatewaySettings(api_key=account.api_key, secret=account.secret, rest_base=sim.urls.rest)
    ref = GatewayActor.start(settings, clock=clock, backoff=THIRTY_S)
    try:
        gateway: GatewayHandle = ref.proxy().handle().get(timeout=10)
        sim.control.add_fault(
            FaultSpec(kind="http_error", target="GET /api/v3/order", count=1, status=503, code=-1001, execute=False)
        )
        lookup = GatewayRequest(Op.FETCH_ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "bx-none"})
        answer = gateway.call(lookup)
        [due] = gateway.wait_retrying(1, timeout_s=20)
        assert due == NOW + 30_000 and not answer.done()
        ticker.advance(due - clock.now_ms())  # no `wake()`: the clock's move reaches the gateway
        result = answer.result(timeout=20)
        assert result.attempts == 2 and result.error is not None and result.error.code == -2013  # asked twice
    finally:
        ref.stop(timeout=20)
