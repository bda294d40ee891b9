"""User-stream faults seen through the whole engine (Engine, root, pair actors, gateway, persistence, real UBWA).

`tests/stream/test_faults.py` proves the stream actor notices each fault and fires a gap; here the question is
the engine's: after a fault in the middle of a burst of fills, did every fill reach the engine exactly once,
is the database equal to the exchange's ledger, and did the right repair run (a reconciliation for the gap,
no retry storm for a key the exchange refuses)?

The bursts run on the simulator's loop without yielding, with the fault injected between two fills, so the
fault lands at the same point of the burst every run. The engine runs on a manual clock: the watchdog and the
periodic reconciliation fire only when the test advances the ticker.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from actors.stream import StreamHealth
from engine.api import Accepted, Engine, EventKind
from engine.domain import Order
from sim import FaultSpec, SimConfig, Simulator
from tests.engine_e2e._stack import Recorder, db_fills, engine_on, ledger_trades, settle
from tests.stream._helpers import on_sim_loop

SEED = 31
PAIRS = {"BTC/USDT": ("BTCUSDT", Decimal("0.00001"), "59000"), "ETH/USDT": ("ETHUSDT", Decimal("0.0001"), "2950")}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(
        seed=SEED, symbols=["BTCUSDT", "ETHUSDT"], start_prices={"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    )
    with Simulator(config) as simulator:
        yield simulator


def _config(**stream: Any) -> dict[str, Any]:
    return {
        "exchange": {"pair_whitelist": list(PAIRS)},
        "execution": {"limit_timeout_s": "3600"},
        # UBWA's own keepalive is slower than the watchdog on the manual clock: the watchdog notices first.
        "stream": {
            "user_data": True,
            "market_data": False,
            "watchdog_silence_s": "3",
            "ping_interval_s": "20",
            "ping_timeout_s": "20",
            **stream,
        },
        "logging": {"level": "WARNING"},
    }


class Reconciliations:
    """The root's "reconciliation (<reason>)" log lines, captured from loguru and waitable."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self._cond = threading.Condition()

    def sink(self, message: Any) -> None:
        text = str(message.record["message"])
        if text.startswith("reconciliation (") and "live orders queried" in text:
            with self._cond:
                self.reasons.append(text[len("reconciliation (") : text.index(")")])
                self._cond.notify_all()

    def wait(self, reason: str, timeout: float = 30) -> None:  # float-ok: seconds
        with self._cond:
            ok = self._cond.wait_for(lambda: any(r.startswith(reason) for r in self.reasons), timeout)
        assert ok, f"no reconciliation for {reason!r}; saw {self.reasons}"


@pytest.fixture
def reconciliations() -> Iterator[Reconciliations]:
    rec = Reconciliations()
    sink_id = logger.add(rec.sink, level="INFO", format="{message}")
    try:
        yield rec
    finally:
        logger.remove(sink_id)


def _place(engine: Engine, units: int) -> dict[str, Order]:
    futures = {
        pair: engine.place_order(pair, "buy", step * units, price, idempotency_key=f"faults-{pair}")
        for pair, (_, step, price) in PAIRS.items()
    }
    placed = {}
    for pair, future in futures.items():
        outcome = future.result(timeout=30)
        assert isinstance(outcome, Accepted), (pair, outcome)
        placed[pair] = outcome.order
    return placed


def _burst(
    sim: Simulator, placed: dict[str, Order], rounds: int, fault_at: int, fault: Callable[[], Coroutine[Any, Any, Any]]
) -> None:
    """`rounds` one-step fills of every order, with `fault()` run on the simulator loop before round `fault_at`."""

    async def go() -> None:
        ops = sim.control.ops
        for n in range(rounds):
            if n == fault_at:
                await fault()
            for pair, order in placed.items():
                symbol, step, _ = PAIRS[pair]
                await ops.fill_order(symbol=symbol, order_id=int(order.exchange_order_id or 0), quantity=step)

    on_sim_loop(sim, go(), timeout=120)


def _assert_engine_equals_ledger(sim: Simulator, tmp_path: Path, events: Recorder, placed: dict[str, Order]) -> None:
    """Every trade on the ledger reached the engine once (a FILL event each) and is stored once."""
    ledger = ledger_trades(sim)
    fills = [e.fill for e in events.of(EventKind.FILL) if e.fill is not None]
    seen = Counter((f.pair, int(f.trade_id)) for f in fills)
    assert max(seen.values()) == 1, f"FILL reported twice: {[k for k, n in seen.items() if n > 1][:5]}"
    want = {(t["symbol"], int(t["id"])): (Decimal(t["qty"]), Decimal(t["price"])) for t in ledger}
    got = {(f.pair.replace("/", ""), int(f.trade_id)): (f.quantity, f.price) for f in fills}
    assert got == want
    stored = db_fills(tmp_path)
    assert len(stored) == len(ledger)
    assert {(f.pair.replace("/", ""), int(f.trade_id)): (f.quantity, f.price) for f in stored} == want
    assert {f.client_order_id for f in stored} == {o.client_order_id for o in placed.values()}


def _wait_all_done(events: Recorder, n: int = len(PAIRS)) -> None:
    events.wait(lambda r: r.count(EventKind.DONE) >= n, timeout=60, what=f"{n} DONE events")


def _user_stream(engine: Engine) -> StreamHealth:
    """The user stream's health as the stream actor has it: an ask, queued behind the watchdog ticks an advance
    told the actor, so what they set off (a silence verdict, the reconnect it starts at once) is in it."""
    stream = engine._root.proxy().stream().get(timeout=10)
    health: StreamHealth = stream.health().get(timeout=10)["user"]
    return health


def _advance_until(engine: Engine, done: Callable[[], bool], step_ms: int = 500, steps: int = 60) -> None:
    """Advance the manual clock step by step, each step a barrier through the gateway and pair actors."""
    for _ in range(steps):
        if done():
            return
        engine.ticker.advance(step_ms)
        settle(engine)
    assert done(), "still not done after advancing the clock"


FAULTS: dict[str, Callable[[Simulator], Callable[[], Coroutine[Any, Any, Any]]]] = {
    "abort": lambda sim: lambda: sim.control.ops.abort_ws("user"),
    "close": lambda sim: lambda: sim.control.ops.close_ws("user"),
    "eventStreamTerminated": lambda sim: lambda: sim.control.ops.event_stream_terminated(None),
    "serverShutdown": lambda sim: sim.control.ops.server_shutdown,
}
GAP_REASON = {
    "abort": "disconnect",
    "close": "disconnect",
    "eventStreamTerminated": "eventStreamTerminated",
    "serverShutdown": "serverShutdown",
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_in_the_middle_of_a_burst_loses_no_fill(
    sim: Simulator, tmp_path: Path, reconciliations: Reconciliations, fault: str
) -> None:
    """A third of the way through 2 × 300 fills the user stream breaks; the rest are lost on the wire and come
    back through the reconciliation the gap triggers (order status, then myTrades)."""
    print(f"simulator seed {SEED}; fault {fault}")
    with engine_on(sim, tmp_path, _config(), subscriptions=1) as (engine, events):
        # The simulator has the subscription before the engine has its confirmation: a fault in that window is
        # part of the first subscription's gap (it flaked under load). The burst starts once that gap is closed.
        reconciliations.wait("first subscription")
        placed = _place(engine, units=300)
        _burst(sim, placed, rounds=300, fault_at=100, fault=FAULTS[fault](sim))
        reconciliations.wait(GAP_REASON[fault])
        _wait_all_done(events)
        assert sim.control.wait_subscriptions(1, within_s=20)  # one live subscription again, not two
        for done in events.of(EventKind.DONE):
            assert done.trade is not None and done.trade.filled == done.trade.requested
        engine.stop()
    _assert_engine_equals_ledger(sim, tmp_path, events, placed)


def test_silent_stall_in_a_burst_is_repaired_by_the_watchdog(
    sim: Simulator, tmp_path: Path, reconciliations: Reconciliations
) -> None:
    """The connection goes silent (no frames, no pongs) mid-burst: only the watchdog on the engine's clock can
    tell; it recreates the stream and the gap's reconciliation brings the swallowed fills."""
    with engine_on(sim, tmp_path, _config(), subscriptions=1) as (engine, events):
        reconciliations.wait("first subscription")  # as above: the stall must come after the confirmation
        placed = _place(engine, units=200)
        _burst(sim, placed, rounds=200, fault_at=50, fault=lambda: sim.control.ops.stall_ws("user"))
        assert events.count(EventKind.DONE) == 0  # the last fills are stuck behind the stall
        # The silence verdict is on the engine's clock; the reconnect it starts is a real handshake, whose connect
        # grace and silence limit run on the engine's clock again: stop moving it once the reconnect is under way
        # (moving on until the gap's reconciliation ran timed the handshake out whenever it took ten steps).
        reconnects = _user_stream(engine).reconnects
        _advance_until(engine, lambda: _user_stream(engine).reconnects > reconnects)
        reconciliations.wait("silence")
        _wait_all_done(events)
        health = engine.health()["streams"]["user"]
        assert health["state"] == "connected" and health["reconnects"] >= 1, health
        engine.stop()
    _assert_engine_equals_ledger(sim, tmp_path, events, placed)


def test_duplicated_and_reordered_events_are_counted_once(sim: Simulator, tmp_path: Path) -> None:
    """A third of the user-stream events is sent twice and a quarter held back behind the next: the engine
    applies each trade once, and a stale report never moves an order backwards."""
    account = sim.accounts[0].name
    dup = sim.control.add_fault(FaultSpec(kind="duplicate_events", target=f"user:{account}", probability=0.33))
    reorder = sim.control.add_fault(FaultSpec(kind="reorder_events", target=f"user:{account}", probability=0.25))
    with engine_on(sim, tmp_path, _config(), subscriptions=1) as (engine, events):
        placed = _place(engine, units=150)

        async def nothing() -> None:
            return None

        _burst(sim, placed, rounds=150, fault_at=-1, fault=nothing)
        sim.control.remove_fault(dup)
        sim.control.remove_fault(reorder)
        sim.control.credit(None, "USDT", "1")  # one more event: releases a report still held back
        _wait_all_done(events)
        engine.stop()
    log = [f["kind"] for f in sim.control.ledger()["faults"]]
    assert log.count("duplicate_events") > 50 and log.count("reorder_events") > 50, Counter(log)
    _assert_engine_equals_ledger(sim, tmp_path, events, placed)
    for done in events.of(EventKind.DONE):
        assert done.trade is not None and done.trade.filled == done.trade.requested


def test_a_refused_subscription_is_fatal_once_and_fills_still_arrive_by_reconciliation(
    sim: Simulator, tmp_path: Path
) -> None:
    """The exchange refuses the user-data subscription as for a bad key (-2015): one attempt, a fatal stream
    health with the reason, no retry storm over ten minutes — and the periodic reconciliation keeps the
    fills coming over REST."""
    sim.control.add_fault(
        FaultSpec(kind="reject_subscribe", target="ws-api", status=401, code=-2015, msg="Invalid API-key, IP, or "
                  "permissions for action.")
    )  # fmt: skip
    with engine_on(sim, tmp_path, _config()) as (engine, events):

        def fatal() -> bool:
            return (engine.health()["streams"] or {}).get("user", {}).get("state") == "fatal"

        for _ in range(10_000):  # each round is an ask through the root's inbox (health is told there)
            if fatal():
                break
        assert fatal(), engine.health()["streams"]
        assert "-2015" in engine.health()["streams"]["user"]["reason"]

        def subscribe_attempts() -> int:
            # The simulator logs the fault on every WS API request it matches; only subscribes are attempts.
            faults = sim.control.ledger()["faults"]
            return sum(1 for f in faults if f["detail"] == "userDataStream.subscribe.signature")

        assert subscribe_attempts() == 1
        order = engine.place_order("BTC/USDT", "buy", "0.01", "59000", idempotency_key="no-stream").result(30)
        assert isinstance(order, Accepted), order
        sim.control.fill_order("BTCUSDT", client_order_id=order.order.client_order_id, quantity="0.004")
        for _ in range(20):  # ten minutes of watchdog ticks, backoff timers and periodic reconciliations
            engine.ticker.advance(30_000)
            settle(engine)
        assert subscribe_attempts() == 1, "the refused subscription was retried"
        assert sim.control.subscriptions() == 0
        [fill] = events.of(EventKind.FILL)  # from a periodic reconciliation: order status, then myTrades
        assert fill.fill is not None and fill.fill.quantity == Decimal("0.004")
        assert not engine.halted  # the REST path still trades; only the stream is fatal
        engine.stop()


def test_while_the_user_stream_is_down_fills_are_reconciled_on_the_tight_cadence(
    sim: Simulator, tmp_path: Path, reconciliations: Reconciliations
) -> None:
    """No stream: the periodic round (every 60 s) is not what finds a fill; the unhealthy cadence does, within
    its 5 s (`stream.reconcile_interval_unhealthy_s`), and keeps doing so while the stream stays down."""
    sim.control.add_fault(
        FaultSpec(kind="reject_subscribe", target="ws-api", status=401, code=-2015, msg="Invalid API-key, IP, or "
                  "permissions for action.")
    )  # fmt: skip
    with engine_on(sim, tmp_path, _config(reconcile_interval_s="60", reconcile_interval_unhealthy_s="5")) as (
        engine,
        events,
    ):
        for _ in range(10_000):  # each round is an ask through the root's inbox (health is told there)
            if (engine.health()["streams"] or {}).get("user", {}).get("state") == "fatal":
                break
        order = engine.place_order("BTC/USDT", "buy", "0.01", "59000", idempotency_key="tight").result(30)
        assert isinstance(order, Accepted), order
        for quantity, seen in (("0.004", 1), ("0.003", 2)):
            sim.control.fill_order("BTCUSDT", client_order_id=order.order.client_order_id, quantity=quantity)
            _advance_until(engine, lambda n=seen: len(events.of(EventKind.FILL)) >= n, step_ms=1_000, steps=6)
        reconciliations.wait("stream unhealthy: user")
        assert "periodic" not in reconciliations.reasons  # 12 s at most went by: not the 60 s cadence
        assert [e.fill.quantity for e in events.of(EventKind.FILL) if e.fill] == [Decimal("0.004"), Decimal("0.003")]
        engine.stop()


def test_more_than_500_fills_lost_on_one_order_are_all_recovered(
    sim: Simulator, tmp_path: Path, reconciliations: Reconciliations
) -> None:
    """A disconnect swallows 600 fills of one order: reconciliation must recover all 600, not just a page.

    (It found that missing fills were fetched with Binance's default page, the newest 500.)"""
    with engine_on(sim, tmp_path, {**_config(), "exchange": {"pair_whitelist": ["BTC/USDT"]}}, subscriptions=1) as (
        engine,
        events,
    ):
        outcome = engine.place_order("BTC/USDT", "buy", "0.008", "59000", idempotency_key="page").result(30)
        assert isinstance(outcome, Accepted), outcome
        placed = {"BTC/USDT": outcome.order}
        _burst(sim, placed, rounds=600, fault_at=0, fault=lambda: sim.control.ops.abort_ws("user"))
        reconciliations.wait("disconnect")
        events.wait(lambda r: r.count(EventKind.FILL) >= 500, what="the first page of fills")
        # The book re-fetches missing fills every second of engine time (at most 10 times), then alerts.
        for _ in range(15):
            if events.count(EventKind.FILL) >= 600:
                break
            engine.ticker.advance(1_000)
            settle(engine)
        assert events.count(EventKind.FILL) == 600, f"{events.count(EventKind.FILL)} of the 600 fills recovered"
        engine.stop()
    _assert_engine_equals_ledger(sim, tmp_path, events, placed)
