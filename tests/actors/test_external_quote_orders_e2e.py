"""An outside market order for a quote amount through the whole engine: the simulator over real sockets (UBWA).

"Buy 200 USDT of BTC" placed in the UI crosses three price levels: three trades of one order, reported NEW with
quantity 0, then PARTIALLY_FILLED, PARTIALLY_FILLED, FILLED.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from engine.api import Engine, EventKind
from engine.clock import SystemClock
from engine.config import Config
from engine.domain import OrderRole, OrderStatus
from sim import AccountSpec, SimConfig, Simulator
from tests.engine_e2e.test_engine_sim import Events

PAIR = "BTC/USDT"
OTHER = AccountSpec(name="other", api_key="B" * 64, secret="c" * 64)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(
        seed=21, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, accounts=[AccountSpec(), OTHER]
    )
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def engine(sim: Simulator, tmp_path: Path) -> Iterator[tuple[Engine, Events]]:
    config = Config.model_validate({"exchange": {"pair_whitelist": [PAIR]}})
    engine = Engine.start(
        config,
        clock=SystemClock(),
        sim=sim,
        database_url=f"sqlite:///{tmp_path}/e.sqlite3",
        spool_path=tmp_path / "spool.jsonl",
    )
    events = Events()
    engine.subscribe(events)
    assert sim.control.wait_subscriptions(1, within_s=20), "the user data stream never subscribed"
    try:
        yield engine, events
    finally:
        engine.stop(graceful=False)


def test_an_outside_quote_market_order_trading_in_three_trades_ends_filled_with_every_fill(
    engine: tuple[Engine, Events], sim: Simulator
) -> None:
    eng, events = engine
    # another account's asks below the book's: the quote amount trades against each, then the book
    for price in ("60001", "60002"):
        sim.control.place_external_order(OTHER.name, symbol="BTCUSDT", side="SELL", type="LIMIT",
                                         timeInForce="GTC", price=price, quantity="0.001")  # fmt: skip
    placed = sim.control.place_external_order(symbol="BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="200",
                                              newClientOrderId="web_q_3")  # fmt: skip
    trades = placed["fills"]
    assert isinstance(trades, list) and len(trades) == 3
    fills = [f for f in events.wait_for(EventKind.FILL, count=3) if f.client_order_id == "web_q_3"]
    assert [f.fill.trade_id for f in fills if f.fill] == [t["tradeId"] for t in trades]
    # the first trade did not close it (it did: its amount was sized to that fill). The later ones may already know
    # it filled: the stream's reports race any lookup of the order (a scan sent in the same millisecond it was seen)
    assert [f.order.status for f in fills[:1] if f.order] == [OrderStatus.PARTIALLY_FILLED]
    order = eng.get_order(PAIR, "web_q_3")
    assert order is not None and order.role is OrderRole.EXTERNAL
    assert order.status is OrderStatus.FILLED
    assert order.filled == order.amount == Decimal(str(placed["executedQty"]))
