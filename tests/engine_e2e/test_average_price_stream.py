"""Found by a mutation audit (a swap of the per-fill and cumulative quote passed every fill test): a limit filled in
several partial fills over the user stream reports the right average price and quote amounts (the stream's per-fill
quote `Y`, not the cumulative `Z`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from loguru import logger

from engine.api import Accepted, EventKind
from sim import Simulator
from tests.engine_e2e._stack import PRICES20, db_fills, engine_on, rich_sim_config, step_of, tick_of
from tests.stream._helpers import on_sim_loop

PAIR, SYMBOL = "BTC/USDT", "BTCUSDT"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(rich_sim_config(21, [SYMBOL])) as simulator:
        yield simulator


def test_partial_fills_over_the_stream_sum_to_the_right_quote_and_average(sim: Simulator, tmp_path: Path) -> None:
    config = {
        "exchange": {"pair_whitelist": [PAIR]},
        "execution": {"limit_timeout_s": "3600"},
        "stream": {"user_data": True, "market_data": False},
        "logging": {"level": "WARNING"},
    }
    reconciled = threading.Event()
    sink = logger.add(
        lambda _m: reconciled.set(),
        level="INFO",
        filter=lambda r: r["message"].startswith("reconciliation (first subscription)"),
    )
    step = step_of(SYMBOL) * 100
    price = (PRICES20[SYMBOL] * Decimal("0.99")).quantize(tick_of(SYMBOL))
    with engine_on(sim, tmp_path, config, subscriptions=1) as (engine, events):
        assert reconciled.wait(30)
        logger.remove(sink)
        outcome = engine.place_order(PAIR, "buy", step * 3, price, idempotency_key="avg").result(timeout=30)
        assert isinstance(outcome, Accepted), outcome
        order_id = int(outcome.order.exchange_order_id)

        async def go() -> None:
            for _ in range(3):
                await sim.control.ops.fill_order(symbol=SYMBOL, order_id=order_id, quantity=step)

        on_sim_loop(sim, go(), timeout=60)
        events.wait(lambda r: r.count(EventKind.DONE) >= 1, timeout=60, what="DONE")
        [done] = events.of(EventKind.DONE)
        engine.stop()
    assert done.trade is not None and done.trade.filled == step * 3
    assert done.trade.average_price == price, done.trade.average_price
    stored = db_fills(tmp_path)
    assert [f.quote_quantity for f in stored] == [step * price] * 3
