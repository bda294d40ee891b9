"""`execution.fallback_after_external_cancel`: what an engine limit canceled outside the engine leads to.

Before: the setting existed in the execution policy only; no configuration reached it, though the docs said the
request "falls back, per configuration" (issue 6: "stops its fallback unless configured otherwise").
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from engine.api import Accepted, Engine, EventKind
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.domain import TradeStatus
from sim import SimConfig, Simulator
from tests.engine_e2e.test_engine_sim import Events

PAIR = "BTC/USDT"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(seed=5, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})
    with Simulator(config) as simulator:
        yield simulator


@pytest.mark.parametrize("fallback", [False, True])
def test_a_limit_canceled_outside_falls_back_only_when_configured(
    sim: Simulator, tmp_path: Path, fallback: bool
) -> None:
    config = Config.model_validate(
        {
            "stream": {"user_data": False, "market_data": False},
            "exchange": {"pair_whitelist": [PAIR]},
            "execution": {"fallback_after_external_cancel": fallback},
        }
    )
    events = Events()
    engine = Engine.start(config, clock=ManualClock(SystemClock().now_ms()), sim=sim,
                          database_url=f"sqlite:///{tmp_path}/e.sqlite3", spool_path=tmp_path / "s.jsonl",
                          listeners=[events])  # fmt: skip
    try:
        accepted = engine.place_order(PAIR, "buy", "0.01", "59950", limit_timeout=600).result(20)
        assert isinstance(accepted, Accepted)
        sim.control.cancel_external_order(None, "BTCUSDT", client_order_id=accepted.order.client_order_id)
        engine.ticker.advance(60_000)  # the periodic reconciliation looks the order up: canceled
        [done] = events.wait_for(EventKind.DONE)
    finally:
        engine.stop(graceful=False)
    ours = [o for o in sim.control.ledger()["orders"] if str(o["clientOrderId"]).startswith("bx-")]
    assert done.trade is not None
    if fallback:
        assert [o["status"] for o in ours] == ["CANCELED", "FILLED"]
        assert done.trade.status is TradeStatus.FILLED and done.trade.filled == Decimal("0.01")
    else:
        assert [o["status"] for o in ours] == ["CANCELED"]
        assert done.trade.status is TradeStatus.CANCELED and "canceled outside the engine" in done.trade.note
