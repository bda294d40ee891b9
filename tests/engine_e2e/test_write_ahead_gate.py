"""The create is prepared while its intent commits, but its bytes never leave before the commit.

The gateway starts a create at once with a gate (engine.venue._gate); the client's fetch waits there until
persistence reports the intent durable. These tests hold the commit's answer and look at the simulator's
ledger while the request waits at the gate, then release it; and make the write-ahead fail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.persistence import PersistenceHandle
from engine.api import Accepted, Engine, EventKind, Refusal, RefusalReason
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.domain import Order
from engine.venue import SendGate
from sim import SimConfig, Simulator

from .test_engine_sim import Events

PAIR = "BTC/USDT"
LIMIT = "59950"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=3, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as simulator:
        yield simulator


def _engine(sim: Simulator, tmp_path: Path) -> Engine:
    config = Config.model_validate(
        {"stream": {"user_data": False, "market_data": False}, "exchange": {"pair_whitelist": [PAIR]}}
    )
    return Engine.start(
        config,
        clock=ManualClock(SystemClock().now_ms()),
        sim=sim,
        database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
        spool_path=tmp_path / "spool.jsonl",
    )


def _engine_orders(sim: Simulator) -> list[dict[str, Any]]:
    return [o for o in sim.control.ledger()["orders"] if str(o["clientOrderId"]).startswith("bx-")]


def test_the_create_waits_at_its_gate_until_the_intent_is_durable(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(sim, tmp_path)
    try:
        release = threading.Event()
        at_gate = threading.Event()
        durable_calls: list[str] = []
        original_write_ahead = PersistenceHandle.write_ahead_then
        original_passed = SendGate.passed

        def held_write_ahead(
            self: PersistenceHandle, record: Any, on_durable: Callable[[], None], on_failed: Any, companions: Any = ()
        ) -> None:
            def later() -> None:
                release.wait(20)
                durable_calls.append(record.client_order_id if isinstance(record, Order) else "?")
                on_durable()

            # The commit really happens; only its answer is held back, on a thread of the test's own.
            original_write_ahead(
                self, record, lambda: threading.Thread(target=later, daemon=True).start(), on_failed, companions
            )

        async def watched_passed(self: SendGate) -> None:
            at_gate.set()
            await original_passed(self)

        monkeypatch.setattr(PersistenceHandle, "write_ahead_then", held_write_ahead)
        monkeypatch.setattr(SendGate, "passed", watched_passed)
        before = len(_engine_orders(sim))
        future = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="gated")
        assert at_gate.wait(20), "the create never reached its gate"
        # Signed and waiting: nothing has reached the exchange, and the caller has no answer yet.
        assert len(_engine_orders(sim)) == before
        assert not future.done()
        release.set()
        outcome = future.result(timeout=20)
        assert isinstance(outcome, Accepted), outcome
        assert durable_calls == [outcome.order.client_order_id]
        assert [o["clientOrderId"] for o in _engine_orders(sim)][before:] == [outcome.order.client_order_id]
    finally:
        engine.stop(graceful=False)


@pytest.mark.parametrize("how", ["answers_failed", "raises"])
def test_a_failed_write_ahead_sends_nothing_and_refuses(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    engine = _engine(sim, tmp_path)
    events = Events()
    engine.subscribe(events)
    try:

        def failing_write_ahead(
            self: PersistenceHandle, record: Any, on_durable: Any, on_failed: Any, companions: Any = ()
        ) -> None:
            if how == "raises":  # persistence cannot even take the message: the queued create must not hang
                raise OSError("disk full (test)")
            on_failed(OSError("disk full (test)"))

        monkeypatch.setattr(PersistenceHandle, "write_ahead_then", failing_write_ahead)
        outcome = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="no-disk").result(timeout=20)
        assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.REJECTED, outcome
        assert "could not be stored" in outcome.message
        [done] = events.wait_for(EventKind.DONE)
        assert done.trade is not None and done.trade.filled == 0
        assert _engine_orders(sim) == []  # the create was prepared, never sent
    finally:
        engine.stop(graceful=False)
