"""The whole engine — Engine API, root, pair actors, gateway, persistence — against the simulator over loopback.

Time is a manual clock: limit timeouts fire when the test advances the ticker, never by sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.api import Accepted, Engine, EngineEvent, EventKind, Refusal, RefusalReason
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.domain import OrderRequest, Side, TradeStatus
from engine.execution import Decision, RiskSnapshot
from engine.execution import RefusalReason as RiskReason
from sim import AccountSpec, FaultSpec, SimConfig, Simulator

PAIR = "BTC/USDT"
NO_STREAMS = {"user_data": False, "market_data": False}  # these tests drive the REST paths only
LIMIT = "59950"  # below the book (no fill), within the 0.5 % slippage bound of the market


class Events:
    """Collects engine events; `wait_for` blocks on an Event until a matching one arrives."""

    def __init__(self) -> None:
        self.items: list[EngineEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: EngineEvent) -> None:
        with self._cond:
            self.items.append(event)
            self._cond.notify_all()

    def wait_for(self, kind: EventKind, count: int = 1, timeout: float = 20) -> list[EngineEvent]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.of(kind)) >= count, timeout)
        assert ok, f"no {kind} event; saw {[e.kind.value for e in self.items]}"
        return self.of(kind)

    def of(self, kind: EventKind) -> list[EngineEvent]:
        return [e for e in self.items if e.kind is kind]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(
        seed=11, symbols=["BTCUSDT", "ETHUSDT"], start_prices={"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    )
    with Simulator(config) as simulator:
        yield simulator


def _config(**execution: Any) -> Config:
    return Config.model_validate(
        {
            "stream": NO_STREAMS,
            "exchange": {"pair_whitelist": ["BTC/USDT", "ETH/USDT"]},
            "execution": {"limit_timeout_s": "5", **execution},
        }
    )


@pytest.fixture
def start(sim: Simulator, tmp_path: Path) -> Iterator[Any]:
    engines: list[Engine] = []

    def _start(config: Config | None = None, clock: Any = None) -> tuple[Engine, Events]:
        engine = Engine.start(
            config or _config(),
            clock=clock or ManualClock(SystemClock().now_ms()),
            sim=sim,
            database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
            spool_path=tmp_path / "spool.jsonl",
        )
        engines.append(engine)
        events = Events()
        engine.subscribe(events)
        return engine, events

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


def _sim_orders(sim: Simulator) -> list[dict[str, Any]]:
    return [o for o in sim.control.ledger()["orders"] if str(o["clientOrderId"]).startswith("bx-")]


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


def test_exchange_rejection_is_a_refusal_with_the_reason(start: Any, sim: Simulator) -> None:
    config = Config.model_validate(
        {
            "stream": NO_STREAMS,
            "exchange": {"pair_whitelist": ["BTC/USDT"]},
            "risk": {"max_order_notional": "10000000"},
        }
    )
    engine, events = start(config)
    outcome = engine.place_order(PAIR, "buy", "50", LIMIT).result(timeout=20)  # 3M USDT; the account has 100k
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.REJECTED
    [error] = events.wait_for(EventKind.ERROR)
    assert "InsufficientBalance" in error.message
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.status is TradeStatus.FAILED


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
        fallback_cid = primary.client_order_id.replace("-p", "-f1")
        assert sum(f.quantity for f in fills_of(database, fallback_cid)) == Decimal("0.01")
    finally:
        database.close()


@pytest.mark.parametrize("mode", ["cancel", "keep"])
def test_graceful_shutdown_with_open_orders(start: Any, sim: Simulator, mode: str) -> None:
    engine, _ = start(_config(on_shutdown=mode, limit_timeout_s="600"))
    outcome = engine.place_order(PAIR, "buy", "0.01", LIMIT).result(timeout=20)
    assert isinstance(outcome, Accepted)
    summary = engine.stop()
    [order] = _sim_orders(sim)
    if mode == "cancel":
        assert order["status"] == "CANCELED" and summary["canceled"] == 1 and summary["open"] == 0
    else:
        assert order["status"] == "NEW" and summary["open"] == 1


def test_crashed_pair_actor_is_restarted_without_losing_its_orders(start: Any, sim: Simulator) -> None:
    engine, events = start()
    outcome = engine.place_order(PAIR, "buy", "0.01", LIMIT).result(timeout=20)
    assert isinstance(outcome, Accepted)
    old = engine._routing.get(PAIR)
    old.crash.defer()
    for _ in range(10_000):  # each round is a barrier through the root's inbox, not a sleep
        engine._root.proxy().pair_refs().get(timeout=10)
        if engine._routing.get(PAIR) is not old:
            break
    assert engine._routing.get(PAIR) is not old
    assert [o.client_order_id for o in engine.open_orders(PAIR)] == [outcome.order.client_order_id]
    engine.ticker.advance(5_000)  # the re-armed timeout still fires and the fallback still runs
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.filled == Decimal("0.01")


@pytest.mark.parametrize(
    "fault",
    [
        FaultSpec(kind="http_error", target="POST /api/v3/order", count=1, status=503, code=-1006, execute=True),
        FaultSpec(kind="http_error", target="POST /api/v3/order", count=1, status=503, code=-1006, execute=False),
        FaultSpec(kind="withhold", target="POST /api/v3/order", count=1, hold_s=3.0),
    ],
    ids=["5xx-created", "5xx-not-created", "timeout-after-accept"],
)
def test_unknown_outcome_never_duplicates(start: Any, sim: Simulator, fault: FaultSpec) -> None:
    config = Config.model_validate(
        {
            "stream": NO_STREAMS,
            "exchange": {"pair_whitelist": ["BTC/USDT"], "request_timeout_s": "1"},
            "execution": {"limit_timeout_s": "600", "unknown_outcome_grace_s": "4"},
        }
    )
    engine, _ = start(config)
    sim.control.add_fault(fault)
    future = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key=f"unknown-{fault.kind}")
    for _ in range(40):  # lookups every 2 s of engine time; after the grace period "not found" means resend
        settle(engine)
        if future.done():
            break
        engine.ticker.advance(1_000)
    outcome = future.result(timeout=10)
    assert isinstance(outcome, Accepted), outcome
    orders = _sim_orders(sim)
    assert len(orders) == 1, orders
    assert orders[0]["clientOrderId"] == outcome.order.client_order_id


def test_429_holds_every_order_until_retry_after(start: Any, sim: Simulator) -> None:
    engine, events = start(_config(limit_timeout_s="600"))  # no limit timeout within the 31 s of this test
    sim.control.add_fault(FaultSpec(kind="rate_limit", target="POST /api/v3/order", count=1, retry_after=30))
    first = engine.place_order(PAIR, "buy", "0.01", LIMIT)
    [error] = events.wait_for(EventKind.ERROR)  # the 429 came back; the create waits to be re-sent
    assert "RateLimited" in error.message
    second = engine.place_order("ETH/USDT", "buy", "0.1", "2995")
    for proxy in engine._routing.routes.values():
        proxy.active_requests().get(timeout=10)  # barrier: both intents have been handed to persistence
    _store(engine).flush().get(timeout=10)  # barrier: durable, so both creates have been handed to the gateway
    gateway = _gateway(engine)
    assert gateway.stats().queued >= 2
    assert not first.done() and not second.done(), "nothing may be sent during Retry-After"
    assert _sim_orders(sim) == []
    engine.ticker.advance(31_000)
    gateway.wake()
    assert isinstance(first.result(timeout=20), Accepted)
    assert isinstance(second.result(timeout=20), Accepted)
    assert len(_sim_orders(sim)) == 2


def _gateway(engine: Engine) -> Any:
    return engine._root.proxy().gateway.get(timeout=5)


def _store(engine: Engine) -> Any:
    return engine._root.proxy().store().get(timeout=5)


def settle(engine: Engine, rounds: int = 50) -> None:
    """Barrier: wait until the gateway is idle and every pair actor has handled what it was told."""
    gateway = _gateway(engine)
    last = None
    store = _store(engine)
    for _ in range(rounds):
        assert gateway.idle(30)
        for proxy in engine._routing.routes.values():
            proxy.active_requests().get(timeout=10)
        store.flush().get(timeout=10)  # write-aheads committed: their creates are with the gateway
        stats = gateway.stats()
        now = (stats.sent, stats.failed, stats.queued)
        if now == last and stats.queued == 0 and stats.in_flight == 0:
            return
        last = now


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
        first.order.client_order_id.replace("-p", "-f1"),
    ]
    fresh = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key="a-new-key").result(timeout=20)
    assert isinstance(fresh, Accepted) and not fresh.duplicate


def test_wallet_below_minimum_refuses_and_sends_nothing(tmp_path: Path) -> None:
    poor = AccountSpec(balances={"USDT": Decimal(1)})  # 1 USDT at 60,000 ≈ 0.0000167 BTC < 0.0001 BTC
    config = SimConfig(seed=3, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, accounts=[poor])
    with Simulator(config) as simulator:
        engine = Engine.start(
            Config.model_validate({"stream": NO_STREAMS, "exchange": {"pair_whitelist": ["BTC/USDT"]}}),
            clock=ManualClock(SystemClock().now_ms()),
            sim=simulator,
            database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
            spool_path=tmp_path / "spool.jsonl",
        )
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


def test_418_ban_halts_new_orders(start: Any, sim: Simulator) -> None:
    engine, _ = start()
    sim.control.add_fault(FaultSpec(kind="ban", target="POST /api/v3/order", count=1, retry_after=120))
    first = engine.place_order(PAIR, "buy", "0.01", LIMIT).result(timeout=20)
    assert isinstance(first, Refusal)
    for _ in range(10_000):  # each round is a barrier through the root's inbox (on_critical is told there)
        engine._root.proxy().pair_refs().get(timeout=10)
        if engine.halted:
            break
    assert engine.halted
    second = engine.place_order("ETH/USDT", "buy", "0.1", "2995").result(timeout=10)
    assert isinstance(second, Refusal) and second.reason is RefusalReason.HALTED
    assert _sim_orders(sim) == []


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
