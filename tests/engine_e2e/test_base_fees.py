"""A buy's fee taken in the base asset (Binance's default without BNB) leaves less than `filled` to sell: the
trade says how much the buy added (`Trade.received`), and selling that closes the position (freqtrade #528)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.api import Accepted, Engine, EventKind
from engine.clock import SystemClock
from engine.config import Config
from engine.domain import Side, Trade, TradeStatus
from sim import AccountSpec, SimConfig, Simulator
from tests.engine_e2e.test_engine_sim import Events

PAIR = "BTC/USDT"


def _market(engine: Engine, events: Events, side: str, amount: Decimal, count: int) -> Trade:
    outcome = engine.place_order(PAIR, side, str(amount), order_type="market").result(timeout=20)
    assert isinstance(outcome, Accepted), outcome
    done = events.wait_for(EventKind.DONE, count=count)[-1]
    assert done.trade is not None
    return done.trade


def test_selling_what_a_buy_received_closes_the_position_when_its_fee_was_taken_in_the_base_asset(
    tmp_path: Path,
) -> None:
    no_btc = AccountSpec(balances={"USDT": Decimal(10_000)})  # no BTC but what the buy brings
    config = SimConfig(seed=5, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, accounts=[no_btc])
    with Simulator(config) as sim:
        engine = Engine.start(
            Config.model_validate({"stream": {"market_data": False}, "exchange": {"pair_whitelist": [PAIR]}}),
            clock=SystemClock(), sim=sim, database_url=f"sqlite:///{tmp_path}/e.sqlite3",
            spool_path=tmp_path / "spool.jsonl",
        )  # fmt: skip
        try:
            events = Events()
            engine.subscribe(events)
            bought = _market(engine, events, "buy", Decimal("0.01"), 1)
            assert bought.filled == Decimal("0.01") and bought.fees["BTC"] > 0  # the fee came out of the BTC
            assert bought.received == bought.filled - bought.fees["BTC"]
            assert Decimal(sim.control.ledger()["balances"]["BTC"]["free"]) == bought.received
            sold = _market(engine, events, "sell", _lot_floor(bought.received), 2)
            assert sold.status is TradeStatus.FILLED and sold.side is Side.SELL and sold.received == sold.filled
        finally:
            engine.stop(graceful=False)


def _lot_floor(amount: Decimal) -> Decimal:
    """`amount` down to BTCUSDT's lot step (0.00001), as a sell of it is sent."""
    return amount.quantize(Decimal("0.00001"), rounding="ROUND_DOWN")
