"""`Engine.subscribe(listener, inline=True)`: the same events as a bus listener, delivered on the pair actor."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from engine.api import Accepted, Engine, EngineEvent, EventKind
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from sim import SimConfig, Simulator

from .test_engine_sim import Events

PAIR = "BTC/USDT"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=4, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as simulator:
        yield simulator


def test_inline_listener_sees_what_the_bus_sees_on_the_pair_thread(sim: Simulator, tmp_path: Path) -> None:
    config = Config.model_validate(
        {"stream": {"user_data": False, "market_data": False}, "exchange": {"pair_whitelist": [PAIR]}}
    )
    engine = Engine.start(
        config,
        clock=ManualClock(SystemClock().now_ms()),
        sim=sim,
        database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
        spool_path=tmp_path / "spool.jsonl",
    )
    try:
        on_bus = Events()
        inline: list[tuple[EngineEvent, str]] = []

        def quick(event: EngineEvent) -> None:
            inline.append((event, threading.current_thread().name))

        def broken(_event: EngineEvent) -> None:
            raise RuntimeError("inline listener bug")

        engine.subscribe(on_bus)
        engine.subscribe(broken, inline=True)  # logged and ignored; the pair actor goes on
        unsubscribe = engine.subscribe(quick, inline=True)
        # Marketable: it fills on arrival, so the create's answer carries the fill (no stream needed).
        outcome = engine.place_order(PAIR, "buy", "0.01", "60500", idempotency_key="inline").result(timeout=20)
        assert isinstance(outcome, Accepted), outcome
        on_bus.wait_for(EventKind.DONE)
        kinds = [(e.kind, e.order.client_order_id if e.order else None) for e in on_bus.items]
        assert [(e.kind, e.order.client_order_id if e.order else None) for e, _ in inline] == kinds
        assert {name for _, name in inline} == {name for _, name in inline if name.startswith("PairActor")}
        assert EventKind.FILL in {k for k, _ in kinds}
        unsubscribe()
        engine.place_order(PAIR, "sell", "0.01", "59500", idempotency_key="after").result(timeout=20)
        on_bus.wait_for(EventKind.DONE, count=2)
        assert len(inline) == len(kinds)  # nothing delivered inline after the unsubscribe
    finally:
        engine.stop(graceful=False)
