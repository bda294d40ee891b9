"""Shared pieces of the whole-stack tests: an event recorder that can be waited on, engine start-up against a
simulator, barriers through the actor tree, and readers of the simulator's ledger and the engine's database.

No sleeps: waits are `threading.Condition` waits with a timeout, and barriers are asks through the actors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.api import Engine, EngineEvent, EventKind
from engine.clock import Clock, ManualClock, SystemClock
from engine.config import Config
from engine.domain import Fill
from sim import AccountSpec, SimConfig, Simulator, make_symbol_spec
from tests.engine_e2e.test_engine_sim import settle

__all__ = [
    "PAIRS20",
    "PRICES20",
    "Recorder",
    "db_fills",
    "engine_on",
    "ledger_trades",
    "rich_sim_config",
    "settle",
    "sim_orders",
    "step_of",
    "tick_of",
]

_BASES = ("BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "TRX", "DOT", "LINK",
          "LTC", "BCH", "AVAX", "ATOM", "UNI", "XLM", "ETC", "FIL", "APT", "NEAR")  # fmt: skip
_PRICES = ("60000", "3000", "600", "150", "0.6", "0.45", "0.15", "0.12", "7", "15",
           "80", "400", "35", "9", "8", "0.11", "25", "5", "9", "5")  # fmt: skip
PRICES20 = {f"{b}USDT": Decimal(p) for b, p in zip(_BASES, _PRICES, strict=True)}
PAIRS20 = [f"{b}/USDT" for b in _BASES]


def rich_sim_config(seed: int, symbols: list[str] | None = None) -> SimConfig:
    """A simulator with the 20 bench symbols (or `symbols`), a rich account and no rate-limit pressure."""
    symbols = symbols or list(PRICES20)
    balances = {"USDT": Decimal(10**9)} | {s.removesuffix("USDT"): Decimal(10**7) for s in symbols}
    limits = {"request_weight_per_minute": 10**9, "orders_per_10s": 10**9, "orders_per_day": 10**12}
    return SimConfig(
        seed=seed,
        symbols=symbols,
        start_prices={s: PRICES20[s] for s in symbols},
        accounts=[AccountSpec(balances=balances)],
        rate_limits=limits,
    )


def step_of(symbol: str) -> Decimal:
    """The simulator's LOT_SIZE step of `symbol` (the engine reads the same from exchangeInfo)."""
    return make_symbol_spec(symbol, PRICES20[symbol]).step_size


def tick_of(symbol: str) -> Decimal:
    """The simulator's PRICE_FILTER tick of `symbol`."""
    return make_symbol_spec(symbol, PRICES20[symbol]).tick_size


class Recorder:
    """Collects engine events; `wait` blocks on a condition until a predicate over them holds."""

    def __init__(self) -> None:
        self.items: list[EngineEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: EngineEvent) -> None:
        with self._cond:
            self.items.append(event)
            self._cond.notify_all()

    def of(self, kind: EventKind) -> list[EngineEvent]:
        with self._cond:
            return [e for e in self.items if e.kind is kind]

    def wait(self, predicate: Callable[[Recorder], bool], timeout: float = 30, what: str = "") -> None:  # float-ok
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self), timeout)
        if not ok:
            kinds: dict[str, int] = {}
            for e in list(self.items):
                kinds[e.kind.value] = kinds.get(e.kind.value, 0) + 1
            raise AssertionError(f"timed out waiting for {what or predicate}; events so far: {kinds}")

    def count(self, kind: EventKind) -> int:
        return len(self.of(kind))


@contextmanager
def engine_on(
    sim: Simulator,
    tmp_path: Path,
    config: dict[str, Any],
    clock: Clock | None = None,
    *,
    subscriptions: int | None = None,
) -> Iterator[tuple[Engine, Recorder]]:
    """Start an engine on `sim` with `config` (a dict for `Config`); wait for `subscriptions` user streams."""
    engine = Engine.start(
        Config.model_validate(config),
        clock=clock or ManualClock(SystemClock().now_ms()),
        sim=sim,
        database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
        spool_path=tmp_path / "spool.jsonl",
    )
    try:
        events = Recorder()
        engine.subscribe(events)
        if subscriptions is not None:
            assert sim.control.wait_subscriptions(subscriptions, within_s=20), "the user data stream never subscribed"
        yield engine, events
    finally:
        engine.stop(graceful=False)


def sim_orders(sim: Simulator) -> list[dict[str, Any]]:
    """The engine's orders on the simulator's ledger (client order ids `bx-…`), in creation order."""
    return [o for o in sim.control.ledger()["orders"] if str(o["clientOrderId"]).startswith("bx-")]


def ledger_trades(sim: Simulator) -> list[dict[str, Any]]:
    """Every trade of the account on the simulator's ledger."""
    return list(sim.control.ledger()["trades"])


def db_fills(tmp_path: Path) -> list[Fill]:
    """Every fill row in the engine's database (read after `engine.stop()` flushed it)."""
    from db import connect, find_fills

    database = connect(f"sqlite:///{tmp_path}/engine.sqlite3")
    try:
        return find_fills(database)
    finally:
        database.close()
