"""Shared rig of the user-data benchmarks (fill_latency, fill_burst, gap_recovery); not a benchmark itself.

- `SimProcess` (in ``_fill_sim.py``): the simulator in its own process, with an ``engine`` and a ``floor``
  account; it stamps each fill the moment its events are queued on the socket.
- `start_engine`: an `Engine` on the simulator with the user-data stream on, and a `FillRecorder` listener.
- `BareUbwa`: the floor: a plain UBWA manager whose callback only stamps the raw text; with `hop=True`, the
  callback tells a pykka actor, which stamps (the design card's one hand-off, stream → pair actor, no logic).
- CPU by thread (`thread_cpu`, `print_thread_cpu`, `ThreadProfiler`) is in ``_fill_cpu.py``.
Every name the benchmarks use is importable from here.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from _fill_cpu import ThreadProfiler, print_thread_cpu, thread_cpu, thread_group
from _fill_sim import ENGINE_KEY, ENGINE_SECRET, FLOOR_KEY, FLOOR_SECRET, HOP_KEY, HOP_SECRET, PRICE, ROOT, SimProcess

__all__ = [
    "ENGINE_KEY",
    "ENGINE_SECRET",
    "FLOOR_KEY",
    "FLOOR_SECRET",
    "HOP_KEY",
    "HOP_SECRET",
    "PRICE",
    "ROOT",
    "BareUbwa",
    "FillRecorder",
    "SimProcess",
    "ThreadProfiler",
    "db_fill_counts",
    "machine_load",
    "pair_of",
    "pct",
    "place_resting",
    "print_thread_cpu",
    "start_engine",
    "symbols_for",
    "thread_cpu",
    "thread_group",
]


def symbols_for(n_pairs: int) -> list[str]:
    """``S00USDT`` … (the engine's whitelist); BTCUSDT is always listed too, to value the wallet in BTC."""
    return [f"S{i:02d}USDT" for i in range(n_pairs)]


def pair_of(symbol: str) -> str:
    return symbol.removesuffix("USDT") + "/USDT"


def pct(samples: Sequence[float], q: float) -> float:  # float-ok: microseconds / milliseconds
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


# ---- the engine ----------------------------------------------------------------------------------
@dataclass
class FillRecorder:
    """An `Engine.subscribe` listener: stamps every FILL event (and keeps what it says) as cheaply as possible."""

    fills: list[tuple[int, str, tuple[str, int], Decimal]] = field(default_factory=list)
    """(ns, client order id, (symbol, trade id), the order's filled): trade ids are per symbol."""
    others: list[Any] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    expect: int = 0
    unsubscribe: Any = None

    def __call__(self, event: Any) -> None:
        t = time.perf_counter_ns()
        if event.kind == "fill" and event.fill is not None:
            filled = event.order.filled if event.order is not None else Decimal(-1)
            self.fills.append((t, event.fill.client_order_id, (event.fill.symbol, event.fill.trade_id), filled))
            if len(self.fills) >= self.expect:
                self.arrived.set()
        else:
            self.others.append(event)

    def reset(self, expect: int) -> None:
        self.fills = []
        self.expect = expect
        self.arrived.clear()


def start_engine(sim: SimProcess, workdir: Path, pairs: list[str]) -> tuple[Any, FillRecorder]:
    """An engine trading `pairs` on the simulator, user data over the WS API, with a `FillRecorder`."""
    from engine.api import Engine
    from engine.clock import SystemClock
    from engine.config import Config

    config = Config.model_validate(
        {
            "exchange": {
                "name": "binance",
                "rest_url": sim.rest,
                "ws_api_url": sim.ws_api,
                "stream_url": sim.stream,
                "key": ENGINE_KEY,
                "secret": ENGINE_SECRET,
                "pair_whitelist": pairs,
            },
            "execution": {"dry_run": False, "limit_timeout_s": "3600"},
            "risk": {"max_order_notional": "100000000"},
            "logging": {"level": "WARNING"},
        }
    )
    engine = Engine.start(
        config,
        clock=SystemClock(),
        database_url=f"sqlite:///{workdir}/engine.sqlite3",
        spool_path=workdir / "spool.jsonl",
    )
    recorder = FillRecorder()
    recorder.unsubscribe = engine.subscribe(recorder)
    return engine, recorder


def place_resting(engine: Any, pairs: Sequence[str], amount: str) -> dict[str, tuple[str, int]]:
    """One resting limit BUY per pair through the engine; pair → (client order id, exchange order id)."""
    futures = {p: engine.place_order(p, "buy", amount, str(PRICE - Decimal("0.1"))) for p in pairs}
    out = {}
    for p, future in futures.items():
        outcome = future.result(timeout=60)
        if not outcome.accepted:
            raise RuntimeError(f"{p} refused: {outcome}")
        out[p] = (outcome.order.client_order_id, int(outcome.order.exchange_order_id))
    return out


def db_fill_counts(workdir: Path) -> tuple[dict[str, int], dict[str, tuple[str, Decimal]]]:
    """From the engine's database (after `stop`): fill rows per client order id, and each order's status/filled."""
    conn = sqlite3.connect(workdir / "engine.sqlite3")
    try:
        fills = dict(conn.execute("SELECT client_order_id, COUNT(*) FROM fills GROUP BY client_order_id").fetchall())
        orders = {
            cid: (status, Decimal(str(filled)))
            for cid, status, filled in conn.execute("SELECT client_order_id, status, filled FROM orders")
        }
    finally:
        conn.close()
    return fills, orders


# ---- the floor -----------------------------------------------------------------------------------
class BareUbwa:
    """A plain UBWA manager on the floor account whose callback only stamps fill reports (the floor)."""

    def __init__(
        self, sim: SimProcess, api_key: str = FLOOR_KEY, api_secret: str = FLOOR_SECRET, *, hop: bool = False
    ) -> None:
        from unicorn_binance_websocket_api import BinanceWebSocketApiManager

        self.stamps: list[int] = []
        self.arrived = threading.Event()
        self.expect = 0
        stamps = self.stamps

        def stamp(_raw: object = None) -> None:
            stamps.append(time.perf_counter_ns())
            if len(stamps) >= self.expect:
                self.arrived.set()

        self._actor: Any = None
        if hop:
            import pykka

            class _Receiver(pykka.ThreadingActor):
                def on_report(self, raw: str) -> None:
                    stamp(raw)

            self._actor = _Receiver.start()
        receiver = self._actor.proxy() if hop else None

        def hit(raw: str) -> None:
            if '"x":"TRADE"' in raw:  # an executionReport of a fill (orjson writes no spaces)
                if receiver is None:
                    stamp()
                else:
                    receiver.on_report.defer(raw)

        self.manager = BinanceWebSocketApiManager(
            exchange="binance.com",
            websocket_api_base_uri=sim.ws_api,
            warn_on_update=False,
            output_default="raw_data",
            high_performance=True,  # as the engine's managers
            disable_colorama=True,
        )
        self.stream_id = str(
            self.manager.create_stream(
                ["arr"], ["!userData"], api_key=api_key, api_secret=api_secret, process_stream_data=hit
            )
        )

    def reset(self, expect: int) -> None:
        self.stamps.clear()
        self.expect = expect
        self.arrived.clear()

    def stop(self) -> None:
        self.manager.stop_manager()
        if self._actor is not None:
            self._actor.stop()
