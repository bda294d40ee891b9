"""Shared by the engine-against-the-simulator tests (tests/engine_e2e/test_engine_sim*.py, and others here that
import `Events` and `settle`): an event collector, the simulator and engine fixtures on a manual clock, and the
barriers that wait for the gateway, the pair actors and persistence to go quiet.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.api import Engine, EngineEvent, EventKind
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from sim import SimConfig, Simulator

PAIR = "BTC/USDT"
NO_STREAMS = {"user_data": False, "market_data": False}  # these tests drive the REST paths only
LIMIT = "59950"  # below the book (no fill), within the 0.5 % slippage bound of the market


class Events:
    """Collects engine events; `wait_for` blocks on an Event until a matching one arrives."""

    def __init__(self) -> None:
        self.items: list[EngineEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: EngineEvent) -> None:
        with self._cond:
            self.items.append(event)
            self._cond.notify_all()

    def wait_for(self, kind: EventKind, count: int = 1, timeout: float = 20) -> list[EngineEvent]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.of(kind)) >= count, timeout)
        assert ok, f"no {kind} event; saw {[e.kind.value for e in self.items]}"
        return self.of(kind)

    def of(self, kind: EventKind) -> list[EngineEvent]:
        return [e for e in self.items if e.kind is kind]


def sim_config() -> SimConfig:
    """The simulator these tests trade on: BTC and ETH against USDT."""
    return SimConfig(
        seed=11, symbols=["BTCUSDT", "ETHUSDT"], start_prices={"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    )


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(sim_config()) as simulator:
        yield simulator


def _config(**execution: Any) -> Config:
    return Config.model_validate(
        {
            "stream": NO_STREAMS,
            "exchange": {"pair_whitelist": ["BTC/USDT", "ETH/USDT"]},
            "execution": {"limit_timeout_s": "5", **execution},
        }
    )


@pytest.fixture
def start(sim: Simulator, tmp_path: Path) -> Iterator[Any]:
    engines: list[Engine] = []

    def _start(config: Config | None = None, clock: Any = None) -> tuple[Engine, Events]:
        engine = Engine.start(
            config or _config(),
            clock=clock or ManualClock(SystemClock().now_ms()),
            sim=sim,
            database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
            spool_path=tmp_path / "spool.jsonl",
        )
        engines.append(engine)
        events = Events()
        engine.subscribe(events)
        return engine, events

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


def _sim_orders(sim: Simulator) -> list[dict[str, Any]]:
    return [o for o in sim.control.ledger()["orders"] if str(o["clientOrderId"]).startswith("bx-")]


@pytest.fixture
def alerts() -> Iterator[list[str]]:
    """The alert keys raised (CRITICAL lines with an `alert`), in order: import the fixture into a test module."""
    from loguru import logger

    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m.record["extra"].get("alert"))), level="CRITICAL", catch=False)
    yield seen
    logger.remove(sink)


def id_scheme(url: str) -> tuple[str, str]:
    """The namespace and tag the engine on the database at `url` makes its client order ids with (drawn when the
    database was created): `client_order_id(key, pair=…, namespace=…, tag=…)` gives the engine's own ids."""
    from db import connect, id_namespace, id_tag

    database = connect(url)
    try:
        return id_namespace(database), id_tag(database)
    finally:
        database.close()


def _gateway(engine: Engine) -> Any:
    return engine._root.proxy().gateway.get(timeout=5)


def _store(engine: Engine) -> Any:
    return engine._root.proxy().store().get(timeout=5)


def settle(engine: Engine, rounds: int = 50) -> None:
    """Barrier: wait until the gateway is idle and every pair actor has handled what it was told."""
    gateway = _gateway(engine)
    last = None
    store = _store(engine)
    for _ in range(rounds):
        if not gateway.idle(1.0):
            # A retry's backoff waits on the injected clock: on a manual clock, move it on to the retry as time
            # would (a withheld or slow answer just gets another round).
            stats, now_ms = gateway.stats(), engine.clock.now_ms()
            if isinstance(engine.clock, ManualClock) and stats.retry_at_ms > now_ms:
                engine.ticker.advance(stats.retry_at_ms - now_ms)
            continue
        for proxy in engine._routing.routes.values():
            proxy.active_requests().get(timeout=10)
        store.flush().get(timeout=10)  # write-aheads committed: their creates are with the gateway
        stats = gateway.stats()
        now = (stats.sent, stats.failed, stats.queued)
        if now == last and stats.queued == 0 and stats.in_flight == 0:
            return
        last = now
