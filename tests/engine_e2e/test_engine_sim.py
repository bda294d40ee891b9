"""The whole engine — Engine API, root, pair actors, gateway, persistence — against the simulator over loopback:
limit timeouts and their market fallback, idempotency, refusals (the engine's, a custom risk manager's, a wallet
below the minimum), what is stored and what leaves memory, and the embedded simulator with a paper wallet.

Time is a manual clock: limit timeouts fire when the test advances the ticker, never by sleeping.
Faults (exchange errors, rate limits, bans, unknown outcomes), actor crashes and shutdown are in
test_engine_sim_faults.py; the shared fixtures and barriers in _engine_sim_helpers.py.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from engine.api import Accepted, Engine, EventKind, Refusal, RefusalReason
from engine.api._wiring import make_embedded_sim
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.domain import OrderRequest, Side, TradeStatus
from engine.execution import Decision, RiskSnapshot
from engine.execution import RefusalReason as RiskReason
from sim import AccountSpec, SimConfig, Simulator
from tests.engine_e2e import _engine_sim_helpers as _shared
from tests.engine_e2e._engine_sim_helpers import (
    LIMIT,
    NO_STREAMS,
    PAIR,
    _config,
    _sim_orders,
    settle,
)

# pytest fixtures from the helper, assigned rather than imported so test arguments may shadow them
sim = _shared.sim
start = _shared.start
Events = _shared.Events  # re-exported: other modules here import `Events` and `settle` from this one


def test_limit_times_out_and_falls_back_to_market(start: Any, sim: Simulator) -> None:
    engine, events = start()
    outcome = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="e2e-1").result(timeout=20)
    assert isinstance(outcome, Accepted), outcome
    assert outcome.order.status.value == "open"
    engine.ticker.advance(5_000)
    [done] = events.wait_for(EventKind.DONE)
    trade = done.trade
    assert trade is not None and trade.status is TradeStatus.FILLED and trade.filled == Decimal("0.01")
    orders = _sim_orders(sim)
    assert [o["status"] for o in orders] == ["CANCELED", "FILLED"]
    assert orders[1]["type"] == "MARKET" and orders[1]["clientOrderId"].endswith("-f1")


@pytest.mark.parametrize(("side", "price_side", "expected"), [("buy", "maker", "59990"), ("sell", "maker", "60010"),
                                                               ("buy", "taker", "60010")])  # fmt: skip
def test_a_limit_without_a_price_rests_at_the_best_bid_or_ask(
    start: Any, sim: Simulator, side: str, price_side: str, expected: str
) -> None:
    # The "at the best bid/ask (configurable side) when no price is given": it was refused as invalid.
    sim.control.set_quote("BTCUSDT", "59990", "60010")
    engine, _ = start(_config(limit_price_side=price_side))
    outcome = engine.place_order(PAIR, side, "0.01", idempotency_key=f"no-price-{side}-{price_side}").result(20)
    assert isinstance(outcome, Accepted), outcome
    assert outcome.order.price == Decimal(expected)
    [order] = _sim_orders(sim)
    assert (order["type"], Decimal(order["price"])) == ("LIMIT", Decimal(expected))


def test_partial_fill_then_fallback_for_the_remainder(start: Any, sim: Simulator) -> None:
    engine, events = start()
    outcome = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="e2e-2").result(timeout=20)
    assert isinstance(outcome, Accepted)
    sim.control.fill_order("BTCUSDT", client_order_id=outcome.order.client_order_id, quantity="0.004")
    engine.ticker.advance(5_000)
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.filled == Decimal("0.01")
    fills = events.of(EventKind.FILL)
    assert sum(e.fill.quantity for e in fills if e.fill) == Decimal("0.01")
    limit_fill = [e.fill for e in fills if e.fill and e.fill.client_order_id == outcome.order.client_order_id]
    assert [f.quantity for f in limit_fill] == [Decimal("0.004")]
    market = _sim_orders(sim)[1]
    assert Decimal(market["origQty"]) == Decimal("0.006")


def test_same_idempotency_key_never_creates_a_second_order(start: Any, sim: Simulator) -> None:
    engine, _ = start()
    first = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="same").result(timeout=20)
    second = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="same").result(timeout=20)
    assert isinstance(first, Accepted) and isinstance(second, Accepted) and second.duplicate
    assert first.order.client_order_id == second.order.client_order_id
    assert len(_sim_orders(sim)) == 1


def test_refusals(start: Any) -> None:
    engine, _ = start()
    assert engine.place_order("DOGE/USDT", "buy", "1", "1").result(5).reason is RefusalReason.NOT_WHITELISTED
    assert engine.place_order(PAIR, "buy", 0.01, LIMIT).result(5).reason is RefusalReason.INVALID_REQUEST
    assert engine.place_order(PAIR, "buy", "-1", LIMIT).result(5).reason is RefusalReason.INVALID_REQUEST
    assert engine.place_order(PAIR, "buy", "0.0000001", LIMIT).result(5).reason is RefusalReason.FILTER_FAILURE
    engine.place_order(PAIR, "buy", "0.01", LIMIT).result(timeout=20)
    conflict = engine.place_order(PAIR, "sell", "0.01", "61000").result(timeout=5)
    assert isinstance(conflict, Refusal) and conflict.reason is RefusalReason.CONFLICT
    engine.pause()
    assert engine.place_order("ETH/USDT", "buy", "0.1", "2900").result(5).reason is RefusalReason.KILL_SWITCH


def test_a_custom_risk_manager_decides(sim: Simulator, tmp_path: Path) -> None:
    class NoSells:
        def check_trade_allowed(self, request: OrderRequest, snapshot: RiskSnapshot) -> Decision:
            if request.side is Side.SELL:
                return Decision.refuse(RiskReason.RISK_LIMIT, "this strategy only buys")
            return Decision.allow()

    engine = Engine.start(
        _config(),
        clock=ManualClock(SystemClock().now_ms()),
        sim=sim,
        database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
        spool_path=tmp_path / "spool.jsonl",
        risk_manager=NoSells(),
    )
    try:
        refusal = engine.place_order("ETH/USDT", "sell", "0.1", "3100").result(timeout=20)
        assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.RISK_LIMIT
        assert refusal.message == "this strategy only buys"
        assert isinstance(engine.place_order(PAIR, "buy", "0.01", LIMIT).result(timeout=20), Accepted)
        assert len(_sim_orders(sim)) == 1
    finally:
        engine.stop(graceful=False)


def test_orders_fills_and_trades_are_stored(start: Any, sim: Simulator, tmp_path: Path) -> None:
    engine, events = start()
    outcome = engine.place_order(
        PAIR,
        "buy",
        "0.01",
        LIMIT,
        idempotency_key="stored",
        context={"strategy": "rsi-dip", "timeframe": "5m", "rsi": "27.5"},
    ).result(20)
    assert isinstance(outcome, Accepted)
    engine.ticker.advance(5_000)
    events.wait_for(EventKind.DONE)
    engine.stop()
    from db import connect, fills_of, find_trades, get_order

    database = connect(f"sqlite:///{tmp_path}/engine.sqlite3")
    try:
        primary = get_order(database, outcome.order.client_order_id)
        assert primary is not None and primary.status.value == "canceled"
        [trade] = find_trades(database, strategy="rsi-dip")
        assert trade.filled == Decimal("0.01") and trade.timeframe == "5m"
        assert trade.indicators["rsi"] == Decimal("27.5")
        fallback_cid = primary.client_order_id.removesuffix("-p") + "-f1"
        assert sum(f.quantity for f in fills_of(database, fallback_cid)) == Decimal("0.01")
    finally:
        database.close()


def test_finished_requests_leave_memory_and_the_key_still_finds_its_order(start: Any, sim: Simulator) -> None:
    engine, events = start()
    first = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="forget-me").result(timeout=20)
    assert isinstance(first, Accepted)
    engine.ticker.advance(5_000)
    events.wait_for(EventKind.DONE)
    pair = engine._routing.get(PAIR)
    assert pair.active_requests().get(timeout=10) == []
    assert pair.get_order(first.order.client_order_id).get(timeout=10) is None  # no longer in memory
    again = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="forget-me").result(timeout=20)
    assert isinstance(again, Accepted) and again.duplicate
    assert again.order.client_order_id == first.order.client_order_id
    assert again.order.status.value == "canceled"  # the stored state, after the fallback took over
    assert [o["clientOrderId"] for o in _sim_orders(sim)] == [
        first.order.client_order_id,
        first.order.client_order_id.removesuffix("-p") + "-f1",
    ]
    fresh = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="a-new-key").result(timeout=20)
    assert isinstance(fresh, Accepted) and not fresh.duplicate
    # The key of a request that left memory, reused for another one: refused, not answered with the old order.
    other = engine.place_order(PAIR, "sell", "0.01", LIMIT, idempotency_key="forget-me").result(timeout=20)
    assert isinstance(other, Refusal) and other.reason is RefusalReason.CONFLICT, other
    assert "side differs" in other.message


def test_an_idempotency_key_reused_for_another_request_is_a_conflict(start: Any, sim: Simulator) -> None:
    # Answering the original order would tell the caller that an order it did not ask for is its own.
    engine, _ = start()
    first = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="reused").result(timeout=20)
    assert isinstance(first, Accepted)
    same = engine.place_order(PAIR, "buy", "0.010", LIMIT, idempotency_key="reused").result(timeout=20)
    assert isinstance(same, Accepted) and same.duplicate  # the same request: the same order
    other = engine.place_order(PAIR, "buy", "0.5", "59000", "limit_maker", idempotency_key="reused").result(20)
    assert isinstance(other, Refusal) and other.reason is RefusalReason.CONFLICT, other
    assert "amount, price, order_type differ" in other.message
    assert len(_sim_orders(sim)) == 1


def test_wallet_below_minimum_refuses_and_sends_nothing(tmp_path: Path) -> None:
    poor = AccountSpec(balances={"USDT": Decimal(1)})  # 1 USDT at 60,000 ≈ 0.0000167 BTC < 0.0001 BTC
    config = SimConfig(seed=3, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, accounts=[poor])
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    with Simulator(config) as simulator:
        try:
            engine = Engine.start(
                Config.model_validate({"stream": NO_STREAMS, "exchange": {"pair_whitelist": ["BTC/USDT"]}}),
                clock=ManualClock(SystemClock().now_ms()),
                sim=simulator,
                database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
                spool_path=tmp_path / "spool.jsonl",
            )
        finally:
            logger.remove(sink)
        # The valuation is exact; the log shows it to BTC's 8 places (it printed 32 digits).
        assert "wallet worth 0.00001666 BTC, below the minimum 0.0001 BTC" in " ".join(warnings), warnings
        try:
            outcome = engine.place_order(PAIR, "buy", "0.00002", "59950").result(timeout=20)
            assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.WALLET_BELOW_MINIMUM
            assert Decimal(outcome.details["wallet_btc"]) < Decimal("0.0001")
            simulator.control.credit(None, "USDT", "100")
            engine.ticker.advance(60_000)  # the wallet is re-valued every minute
            for _ in range(100):  # each round is a barrier through the gateway and the root, not a sleep
                settle(engine)
                engine._root.proxy().pair_refs().get(timeout=10)
                if (engine._state.intake().wallet_btc or 0) >= Decimal("0.0001"):
                    break
            assert (engine._state.intake().wallet_btc or 0) >= Decimal("0.0001")
            assert _sim_orders(simulator) == []
            funded = engine.place_order(PAIR, "buy", "0.001", "59950").result(timeout=20)
            assert isinstance(funded, Accepted), funded
        finally:
            engine.stop(graceful=False)


@pytest.mark.parametrize(("pct", "volatility"), [("0.05", 0.0005), ("0", 0.0), ("2.5", 0.025)])
def test_the_sim_section_sets_the_embedded_simulators_volatility(pct: str, volatility: float) -> None:
    config = Config.model_validate({"exchange": {"pair_whitelist": ["BTC/USDT"]}, "sim": {"volatility_pct": pct}})
    assert make_embedded_sim(config).config.volatility == pytest.approx(volatility)


def test_embedded_simulator_with_the_paper_wallet(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "stream": NO_STREAMS,
            "exchange": {"pair_whitelist": ["BTC/USDT"]},
            "execution": {"dry_run_wallet": {"USDT": "1000"}},
            "sim": {"market_tick_interval_s": "0"},
        }
    )
    engine = Engine.start(
        config,
        clock=ManualClock(SystemClock().now_ms()),
        database_url=f"sqlite:///{tmp_path}/e.sqlite3",
        spool_path=tmp_path / "spool.jsonl",
    )
    try:
        assert engine.sim is not None
        balances = engine.sim.control.ledger()["balances"]
        assert Decimal(balances["USDT"]["free"]) == Decimal(1000)
        too_big = engine.place_order(PAIR, "buy", "0.1", "59000", idempotency_key="big").result(timeout=20)
        assert isinstance(too_big, Refusal) and too_big.reason is RefusalReason.REJECTED  # 5,900 > 1,000 USDT
        outcome = engine.place_order(PAIR, "buy", "0.01", "59000").result(timeout=20)
        assert isinstance(outcome, Accepted)  # the simulator the engine started is still serving
    finally:
        engine.stop()
    assert engine.sim._thread is None  # stopped with the engine
