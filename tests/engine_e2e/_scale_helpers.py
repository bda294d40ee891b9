"""Shared by the tests that prove what reached the simulator: its request log read from a mark on (and what it
weighed, minute by minute), a barrier that lets the engine act on a manual clock's move without moving it further
(`settle` moves it to a retry's time), the simulator's clock moved with the engine's, and a tally of every 429/418
the simulator answered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from engine.api import Engine
from sim import SimError, Simulator, wall_clock_ms
from sim._rest import RestApi

__all__ = ["ExchangeTime", "ThrottleTally", "barrier", "requests_since", "step", "weight_by_minute"]


def requests_since(sim: Simulator, mark: int) -> list[tuple[str, str]]:
    """(method, path) of every request the simulator received after the first `mark` ones (needs
    `SimConfig(record_requests=True)`)."""
    return [(str(r["method"]), str(r["path"])) for r in sim.control.requests()[mark:]]


def barrier(engine: Engine) -> None:
    """What the last clock move set off has been handed on: the root handled its timers' messages (reconciliation,
    the wallet read), every pair actor handled what it was told, persistence committed (a create's write-ahead
    lets it into the gateway), and the gateway took in everything submitted before. The clock is not moved."""
    root = engine._root.proxy()
    root.pair_refs().get(timeout=10)
    for proxy in engine._routing.routes.values():
        proxy.active_requests().get(timeout=10)
    root.store().get(timeout=10).flush().get(timeout=10)
    root.pair_refs().get(timeout=10)  # what the pair actors told the root meanwhile
    root.gateway.get(timeout=10).stats()  # runs on the gateway's loop after the submits queued before it


def step(engine: Engine, total_ms: int, step_ms: int = 1_000, each: Callable[[], None] | None = None) -> None:
    """Move the engine's manual clock on by `total_ms` in `step_ms` steps, with a `barrier` (and `each`) after each."""
    moved = 0
    while moved < total_ms:
        delta = min(step_ms, total_ms - moved)
        engine.ticker.advance(delta)
        moved += delta
        barrier(engine)
        if each is not None:
            each()


def weight_by_minute(sim: Simulator, mark: int = 0) -> Counter[int]:
    """The request weight the simulator charged (as its routes weigh a request) per minute of its clock, for the
    requests after the first `mark` ones (needs `SimConfig(record_requests=True)`). A successful order POST/DELETE
    weighs nothing; a refused one is counted here all the same (none is expected where this is used)."""
    routes = {(r.method, r.path): r for r in RestApi(sim.core).routes()}
    spent: Counter[int] = Counter()
    for entry in sim.control.requests()[mark:]:
        route = routes.get((str(entry["method"]), str(entry["path"])))
        if route is None or route.zero_on_success:
            continue
        params = dict(parse_qsl(str(entry["body"]))) | dict(parse_qsl(str(entry["query"])))
        spent[int(str(entry["time"])) // 60_000] += route.weight(params)
    return spent


class ExchangeTime:
    """The simulator's clock: the wall clock (ccxt signs requests with it) plus what the test moved it on by. The
    engine measures the offset as it starts, so its manual clock should start at the wall clock's time then and move
    with `shift_ms` (`advance` moves both)."""

    def __init__(self) -> None:
        self.shift_ms = 0

    def __call__(self) -> int:
        return wall_clock_ms() + self.shift_ms

    def jump_to(self, exchange_ms: int) -> None:
        """Move the simulator's clock on to `exchange_ms` (no engine runs on it now)."""
        if exchange_ms < self():
            raise ValueError("the exchange's clock does not go backwards")
        self.shift_ms = exchange_ms - wall_clock_ms()

    def advance(self, engine: Engine, total_ms: int, step_ms: int = 1_000) -> None:
        """Move the simulator's clock and the engine's together, `step_ms` at a time, with a `barrier` after each
        (the exchange first: what the engine's timers send meets the moved clock)."""
        moved = 0
        while moved < total_ms:
            delta = min(step_ms, total_ms - moved)
            self.shift_ms += delta
            engine.ticker.advance(delta)
            moved += delta
            barrier(engine)


class ThrottleTally:
    """Every 429 and 418 the simulator's rate limiter answered (a request refused for its weight, its order count or
    an IP ban, or a connection attempt refused; a ban met inside the weight check is listed twice): its checks are
    wrapped, before the engine starts."""

    def __init__(self, sim: Simulator) -> None:
        self.refusals: list[tuple[int, int, str]] = []
        limiter = sim.core.limiter
        for name in ("check_weight", "check_banned", "check_order", "count_connection"):
            setattr(limiter, name, self._wrap(getattr(limiter, name)))

    def _wrap(self, check: Callable[..., Any]) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                answer = check(*args, **kwargs)
            except SimError as exc:
                self.refusals.append((exc.status, exc.code, exc.msg))
                raise
            if isinstance(answer, SimError):  # a connection attempt over the budget: its 429 is returned
                self.refusals.append((answer.status, answer.code, answer.msg))
            return answer

        return checked
