"""A LIMIT_MAKER without a price is valued by the risk check at the price it is placed at: its own side of the book,
whatever `execution.limit_price_side` says. With `taker` a sell was checked at the bid and placed at the ask, past
`risk.max_order_notional` (found by a review of the change that made it rest at its own side)."""

from __future__ import annotations

from typing import Any

from engine.api import Refusal, RefusalReason
from engine.config import Config
from sim import Simulator
from tests.engine_e2e import _engine_sim_helpers as _shared
from tests.engine_e2e._engine_sim_helpers import NO_STREAMS, PAIR, _sim_orders

sim = _shared.sim
start = _shared.start


def test_a_limit_maker_sell_without_a_price_is_refused_past_the_notional_cap_at_its_own_side(
    start: Any, sim: Simulator
) -> None:
    sim.control.set_quote("BTCUSDT", "59000", "61000")  # a wide spread: 590 at the bid, 610 at the ask
    config = Config.model_validate({"stream": NO_STREAMS, "exchange": {"pair_whitelist": ["BTC/USDT"]},
                                    "execution": {"limit_price_side": "taker"},
                                    "risk": {"max_order_notional": "600"}})  # fmt: skip
    engine, _events = start(config)
    outcome = engine.place_order(PAIR, "sell", "0.01", None, order_type="limit_maker").result(20)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.RISK_LIMIT, outcome
    assert _sim_orders(sim) == []
