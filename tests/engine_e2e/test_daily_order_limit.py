"""The account's daily order count reached: the next request is answered at once — not sent, new orders halted
until 00:00 UTC, alert `order_limit` — and trading resumes when the day turns. Before, its create (and every
one after it, the fallbacks of timed-out limits included) waited in the gateway until 00:00 UTC and was traded
then; against Binance, which sends that 429 without Retry-After, each went out again every minute instead."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.api import Accepted, Engine, Refusal, RefusalReason
from engine.clock import ManualClock
from engine.config import Config
from sim import AccountSpec, SimConfig, Simulator, wall_clock_ms
from tests.engine_e2e._scale_helpers import ExchangeTime, barrier

DAY = 86_400_000
ORDERS_PER_DAY = 3
TO_MIDNIGHT_MS = 600_000


def test_the_daily_order_count_reached_halts_new_orders_until_the_day_turns(
    tmp_path: Path, log_lines: list[str]
) -> None:
    exchange_time = ExchangeTime()
    # Tomorrow 23:50 UTC at the exchange: the day turns in 10 minutes, longer than the 5 a create may be held.
    exchange_time.jump_to(wall_clock_ms() - wall_clock_ms() % DAY + 2 * DAY - TO_MIDNIGHT_MS)
    limits = {"request_weight_per_minute": 10**6, "orders_per_10s": 10**6, "orders_per_day": ORDERS_PER_DAY}
    sim_config = SimConfig(seed=7, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)},
                           accounts=[AccountSpec(balances={"USDT": Decimal(10**6), "BTC": Decimal(10)})],
                           rate_limits=limits)  # fmt: skip
    config = Config.model_validate({
        "stream": {"user_data": False, "market_data": False},
        "exchange": {"pair_whitelist": ["BTC/USDT"]},
        "execution": {"limit_timeout_s": "3600", "conflict_policy": "parallel"},  # no fallback in the test
        "risk": {"max_open_orders_per_pair": 100},
    })  # fmt: skip
    with Simulator(sim_config, clock=exchange_time) as sim:
        engine = Engine.start(
            config,
            clock=ManualClock(wall_clock_ms()),
            sim=sim,
            database_url=f"sqlite:///{tmp_path}/e.sqlite3",
            spool_path=tmp_path / "spool.jsonl",
        )
        try:
            outcomes = [engine.place_order("BTC/USDT", "buy", "0.001", str(59_000 - i)).result(30) for i in range(4)]
            accepted = [o for o in outcomes if isinstance(o, Accepted)]
            refused = [o for o in outcomes if isinstance(o, Refusal)]
            # The engine's budget keeps a margin under the exchange's count: it stops short of the -1015 itself.
            assert 1 <= len(accepted) <= ORDERS_PER_DAY and refused, outcomes
            first = refused[0]
            assert first.reason is RefusalReason.HALTED, first  # never sent: not the exchange's rejection
            assert "not sent: new orders are held until" in first.message, first
            assert "00:00:00 UTC" in first.message and "max_create_hold_s" in first.message, first
            assert engine.halted and "held until" in engine._state.intake().halt_reason
            later = engine.place_order("BTC/USDT", "buy", "0.001", "58000").result(30)
            assert isinstance(later, Refusal) and later.reason is RefusalReason.HALTED, later
            assert any("ALERT order_limit" in line for line in log_lines), log_lines
            sent = len(sim.control.ledger()["orders"])
            assert sent == len(accepted), "a refused create reached the exchange"

            # The engine's clock reaches 00:00 UTC (the gateway test sends the next day's create): intake resumes.
            engine.ticker.advance(TO_MIDNIGHT_MS + 1_000)
            barrier(engine)
            assert not engine.halted, engine._state.intake().halt_reason
            assert any("order limit hold over: new orders resume" in line for line in log_lines)
        finally:
            engine.stop(graceful=False)
