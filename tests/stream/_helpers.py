"""Shared helpers for the stream actor tests: a listener that records everything, and actor start-up."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, TypeVar

import pykka

from actors._ticker import Ticker
from actors.stream import HealthState, LatestPrices, StreamActor, StreamHealth, StreamProxy, StreamSettings
from actors.stream._frames import AccountFrame
from engine.clock import ManualClock
from engine.domain import ErrorRecord, Symbol
from engine.exchange import ExecutionReport, UserDataReport
from sim import SimConfig, Simulator

T = TypeVar("T")
WAIT_S = 15.0


@dataclass
class Recorder:
    """Everything the actor tells up, with a condition to wait on."""

    reports: list[UserDataReport] = field(default_factory=list)
    prices: list[tuple[Symbol, Decimal, Decimal, int]] = field(default_factory=list)
    health: list[StreamHealth] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def on_report(self, report: UserDataReport | AccountFrame) -> None:
        if isinstance(report, AccountFrame):
            report = report.parse()  # account events come unparsed off UBWA's thread
        with self.cond:
            self.reports.append(report)
            self.cond.notify_all()

    def on_price(self, symbol: Symbol, bid: Decimal, ask: Decimal, at_ms: int) -> None:
        with self.cond:
            self.prices.append((symbol, bid, ask, at_ms))
            self.cond.notify_all()

    def on_health(self, health: StreamHealth) -> None:
        with self.cond:
            self.health.append(health)
            self.cond.notify_all()

    def on_gap(self, reason: str) -> None:
        with self.cond:
            self.gaps.append(reason)
            self.cond.notify_all()

    def on_error(self, error: ErrorRecord) -> None:
        with self.cond:
            self.errors.append(error)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[Recorder], bool], timeout: float = WAIT_S, what: str = "") -> None:  # float-ok
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"timed out waiting for {what or predicate}; health={self.states()}")

    def executions(self) -> list[ExecutionReport]:
        with self.cond:
            return [r for r in self.reports if isinstance(r, ExecutionReport)]

    def states(self, stream: str = "user") -> list[HealthState]:
        with self.cond:
            return [h.state for h in self.health if h.stream == stream]

    def connected_count(self, stream: str = "user") -> int:
        return self.states(stream).count(HealthState.CONNECTED)


@dataclass
class Running:
    """A started stream actor with its clock, ticker and recorder."""

    sim: Simulator
    proxy: StreamProxy
    ref: pykka.ActorRef[StreamActor]
    clock: ManualClock
    ticker: Ticker
    rec: Recorder

    def advance(self, ms: int, step_ms: int = 100) -> None:
        """Move the manual clock in steps (each fires the timers that became due)."""
        for _ in range(ms // step_ms):
            self.ticker.advance(step_ms)
        if ms % step_ms:
            self.ticker.advance(ms % step_ms)

    def advance_until(self, predicate: Callable[[Recorder], bool], what: str, step_ms: int = 500) -> None:
        """Advance the manual clock step by step (each step a barrier on the actor) until `predicate` holds.

        Frames already in flight when a test stalls the simulator land a moment later and carry the manual time
        of their arrival; stepping until the watchdog reacts keeps such tests deterministic without sleeping.
        """
        for _ in range(40):
            if predicate(self.rec):
                return
            self.advance(step_ms)
            self.proxy.stream_ids().get(timeout=5)  # barrier: the ticks fired so far are handled
        self.rec.wait(predicate, timeout=5, what=what)

    def attempts(self) -> int:
        return self.proxy.connection_attempts().get(timeout=5)


def settings_for(sim: Simulator, **overrides: Any) -> StreamSettings:
    acc = sim.accounts[0]
    base = StreamSettings(
        exchange="binance",
        ws_api_url=sim.urls.ws_api,
        stream_url=sim.urls.stream,
        rest_url=sim.urls.rest,
        api_key=acc.api_key,
        api_secret=acc.secret,
        watchdog_silence_ms=3_000,
        reconnect_grace_ms=2_000,
    )
    return replace(base, **overrides)


@contextmanager
def stream_actor(
    sim: Simulator,
    seed: int = 7,
    *,
    rec: Recorder | None = None,
    prices: LatestPrices | None = None,
    on_report: Callable[[UserDataReport], None] | None = None,
    on_price: Callable[[Symbol, Decimal, Decimal, int], None] | None = None,
    wall_ms: Callable[[], int] | None = None,
    clock: ManualClock | None = None,
    **overrides: Any,
) -> Iterator[Running]:
    """Start a stream actor against `sim` on a manual clock (`clock`, or a new one; `wall_ms`: the host clock it
    signs by); stop it afterwards."""
    clock = clock or ManualClock()
    ticker = Ticker(clock)
    rec = rec or Recorder()
    ref = StreamActor.start(
        settings_for(sim, **overrides),
        clock=clock,
        ticker=ticker,
        on_report=on_report or rec.on_report,
        on_price=on_price or rec.on_price,
        on_health=rec.on_health,
        on_gap=rec.on_gap,
        on_error=rec.on_error,
        rng=random.Random(seed),
        prices=prices,
        wall_ms=wall_ms,
    )
    proxy: StreamProxy = ref.proxy()  # type: ignore[assignment]
    try:
        yield Running(sim, proxy, ref, clock, ticker, rec)
    finally:
        ref.stop(timeout=10)


@contextmanager
def running_sim(clock: ManualClock | None = None, **kw: Any) -> Iterator[Simulator]:
    """A simulator with `SimConfig(**kw)`, on `clock` if given (shared with the stream actor: the simulator's rate
    windows, bans and listenKey lifetimes then move with the test's clock; the actor signs with the offset it
    measures, so the WS API subscription is unaffected)."""
    with Simulator(SimConfig(**kw), clock=None if clock is None else clock.now_ms) as sim:
        yield sim


def on_sim_loop(sim: Simulator, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:  # float-ok: seconds
    """Run `coro` on the simulator's loop (for bursts and raw frames the control API has no operation for)."""
    loop = sim._loop  # the simulator exposes no public hook for running arbitrary code on its loop
    assert loop is not None
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


def push_raw_user_frames(sim: Simulator, *frames: bytes) -> int:
    """Send `frames` verbatim on every subscribed WS API connection (malformed frames, say)."""

    async def push() -> int:
        conns = [c for c in list(sim.ws.conns) if c.kind == "ws-api" and c.subs]
        for conn in conns:
            for frame in frames:
                conn.push(frame)
        return len(conns)

    return on_sim_loop(sim, push())


def place_limit(sim: Simulator, symbol: str, cid: str, price: str, qty: str = "0.01", side: str = "BUY") -> int:
    """A resting LIMIT order placed from 'outside' (sim control); returns its order id."""
    res = sim.control.place_external_order(
        symbol=symbol, side=side, type="LIMIT", timeInForce="GTC", quantity=qty, price=price, newClientOrderId=cid
    )
    return int(str(res["orderId"]))


def user_subs(sim: Simulator) -> set[int]:
    """Identities of the simulator's current user-data subscriptions (all accounts)."""

    async def get() -> set[int]:
        return {id(sub) for subs in sim.core.user_subs.values() for sub in subs}

    return on_sim_loop(sim, get())


def wait_new_user_sub(sim: Simulator, old: set[int], timeout: float = WAIT_S) -> None:  # float-ok: seconds
    """Block until the simulator has registered a user-data subscription that is not in `old`.

    A listenKey stream's CONNECT fires when the handshake completes, a moment before the simulator routes
    events to it; a test that places an order right then would race it.
    """

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        while not user_subs_now() - old:
            fut: asyncio.Future[None] = loop.create_future()

            def wake(fut: asyncio.Future[None] = fut) -> None:
                if not fut.done():
                    fut.set_result(None)

            sim.core.sub_listeners.append(wake)
            await asyncio.wait_for(fut, timeout)

    def user_subs_now() -> set[int]:
        return {id(sub) for subs in sim.core.user_subs.values() for sub in subs}

    on_sim_loop(sim, wait(), timeout + 5)
