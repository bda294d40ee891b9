"""The engine over the simulator when a pair actor crashes, when the engine halts with requests queued, and when
live mode's start-up checks fail: every caller gets an answer, nothing is sent that should not be."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pykka
import pytest
from loguru import logger

from engine.api import Accepted, Engine, EngineEvent, EventKind, Refusal, RefusalReason
from engine.api._engine import StartupChecksFailed
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.domain import OrderStatus
from sim import AccountSpec, SimConfig, Simulator
from tests.sim._hold import HoldingSimulator

PAIR = "BTC/USDT"
NO_STREAMS = {"user_data": False, "market_data": False}
_WAIT_S = 20.0


@pytest.fixture
def sim() -> Iterator[Simulator]:
    cfg = SimConfig(seed=11, symbols=["BTCUSDT", "ETHUSDT"],
                    start_prices={"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)})  # fmt: skip
    with HoldingSimulator(cfg) as s:  # answers can be held until the test releases them
        yield s


def _engine(sim: Simulator, tmp_path: Path, **execution: str) -> Engine:
    cfg = Config.model_validate({
        "stream": NO_STREAMS,
        "exchange": {"pair_whitelist": [PAIR, "ETH/USDT"]},
        "execution": {"limit_timeout_s": "600", **execution},
    })  # fmt: skip
    return Engine.start(cfg, clock=ManualClock(SystemClock().now_ms()), sim=sim,
                        database_url=f"sqlite:///{tmp_path}/e.sqlite3", spool_path=tmp_path / "s.jsonl")  # fmt: skip


def _crash_and_wait(engine: Engine) -> None:
    """Crash the pair's actor; return once the root restarted it or gave up on it (halted)."""
    old = engine._routing.get(PAIR)
    old.crash.defer()
    for _ in range(5000):  # each round is an ask of the root: it handles the crash report in between
        engine._root.proxy().pair_refs().get(timeout=_WAIT_S)
        if engine._routing.get(PAIR) is not old or engine.halted:
            return
    raise AssertionError("the pair actor was neither restarted nor given up on")


def test_a_create_answered_after_the_restart_reaches_the_new_actor(sim: HoldingSimulator, tmp_path: Path) -> None:
    engine = _engine(sim, tmp_path)
    try:
        # The exchange takes the order but holds its answer back until the actor that sent it died and was replaced.
        held = sim.hold("POST", "/api/v3/order")
        future = engine.place_order(PAIR, "buy", "0.01", "59950", idempotency_key="k-crash")
        assert held.wait_held(_WAIT_S), "the create never reached the exchange"
        _crash_and_wait(engine)
        assert not engine.halted and not future.done()  # restarted, and the answer not yet given
        held.release()
        outcome = future.result(timeout=_WAIT_S)
        assert isinstance(outcome, Accepted), outcome
        [order] = engine.open_orders(PAIR)
        assert order.status is OrderStatus.OPEN and order.client_order_id == outcome.order.client_order_id
    finally:
        engine.stop(graceful=False)


def test_a_queued_request_is_refused_when_the_kill_switch_came_on(sim: Simulator, tmp_path: Path) -> None:
    engine = _engine(sim, tmp_path, conflict_policy="queue", fallback="none")
    try:
        first = engine.place_order(PAIR, "buy", "0.01", "59950").result(timeout=_WAIT_S)
        assert isinstance(first, Accepted), first
        queued = engine.place_order(PAIR, "sell", "0.01", "60100")
        assert len(engine._routing.get(PAIR).active_requests().get(timeout=_WAIT_S)) == 2  # barrier: queued
        engine.pause(True)
        engine.cancel_order(PAIR, first.order.request_id)  # the first ends: the queue moves on
        outcome = queued.result(timeout=_WAIT_S)
        assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.KILL_SWITCH, outcome
        assert [o for o in sim.control.ledger()["orders"] if o["side"] == "SELL"] == []
    finally:
        engine.stop(graceful=False)


def test_a_pair_given_up_on_refuses_new_requests_and_is_skipped_by_queries(sim: Simulator, tmp_path: Path) -> None:
    engine = _engine(sim, tmp_path)
    try:
        eth = engine.place_order("ETH/USDT", "buy", "0.1", "2990").result(timeout=_WAIT_S)
        assert isinstance(eth, Accepted), eth
        for _ in range(4):  # the default restart budget is 3
            _crash_and_wait(engine)
        assert engine.halted
        outcome = engine.place_order(PAIR, "buy", "0.01", "59950").result(timeout=_WAIT_S)
        assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.HALTED, outcome
        assert [o.client_order_id for o in engine.open_orders()] == [eth.order.client_order_id]
        assert engine.open_orders(PAIR) == []
        assert engine.get_order("ETH/USDT", eth.order.client_order_id) is not None
    finally:
        engine.stop(graceful=False)


def test_inline_listeners_hear_a_halted_pairs_events_as_bus_listeners_do(sim: Simulator, tmp_path: Path) -> None:
    # The root tracks a halted pair's orders itself; it published their events to the bus listeners only, so an
    # `inline=True` subscriber missed every fill, cancel and done of that pair (and of unrouted pairs).
    engine = _engine(sim, tmp_path)
    bus: list[EngineEvent] = []
    inline: list[EngineEvent] = []
    done = {"bus": threading.Event(), "inline": threading.Event()}

    def listener(name: str, into: list[EngineEvent]) -> Callable[[EngineEvent], None]:
        def hear(event: EngineEvent) -> None:
            into.append(event)
            if event.kind is EventKind.DONE:
                done[name].set()

        return hear

    engine.subscribe(listener("bus", bus))
    engine.subscribe(listener("inline", inline), inline=True)
    try:
        placed = engine.place_order(PAIR, "buy", "0.01", "59950").result(timeout=_WAIT_S)
        assert isinstance(placed, Accepted), placed
        for _ in range(4):  # the default restart budget is 3
            _crash_and_wait(engine)
        assert engine.halted
        bus.clear()
        inline.clear()
        engine.cancel_order(PAIR, placed.order.request_id)
        assert done["bus"].wait(_WAIT_S) and done["inline"].wait(_WAIT_S)
        assert [e.kind for e in inline] == [e.kind for e in bus] == [EventKind.CANCELED, EventKind.DONE]
    finally:
        engine.stop(graceful=False)


def test_a_bad_message_to_the_root_is_survived_and_a_dead_root_takes_its_children_with_it(
    sim: Simulator, tmp_path: Path
) -> None:
    # A bookTicker row with a null price raised in `on_prices`: pykka stopped the root (the supervisor), and
    # `stop()` then raised ActorDeadError and left bus, persistence, gateway and pairs running.
    before = set(pykka.ActorRegistry.get_all())
    engine = _engine(sim, tmp_path)
    alerts: list[str] = []
    sink = logger.add(lambda m: alerts.append(str(m)), filter=lambda r: "ALERT root_error" in r["message"])
    try:
        root = engine._root
        root.proxy().on_prices.defer([{"symbol": "BTCUSDT", "bidPrice": None, "askPrice": "60001"}])  # skipped
        root.proxy().on_wallet_account.defer(None)  # raises inside (no `.error`): survived, alerted
        assert root.proxy().pair_refs().get(timeout=_WAIT_S) is not None and root.is_alive()
        assert any("on_wallet_account failed" in a for a in alerts)
        # Anything else that kills it: its children go with it, and stop() still returns.
        root.proxy().pair_refs.defer("an argument it does not take")  # a TypeError in the root's thread
        # pykka marks it stopped before its on_failure runs: that one says when the children are stopped
        assert engine._state.children_stopped.wait(_WAIT_S) and not root.is_alive()
        assert any("the root actor died" in a for a in alerts)
    finally:
        logger.remove(sink)
        engine.stop()
    assert {ref for ref in set(pykka.ActorRegistry.get_all()) - before if ref.is_alive()} == set()


def test_an_account_call_not_answered_in_time_at_start_leaves_the_wallet_unknown_not_the_engine_down(
    sim: HoldingSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The start-up valuation caught only exchange errors: a gateway answer slower than the root's wait (a
    # timeout plus a retry is enough) raised TimeoutError and the whole start failed, after pair actors had
    # already resumed restored requests. Now the wallet is unknown and new orders are refused, as documented.
    monkeypatch.setattr("actors.root._CALL_TIMEOUT_S", 1.0)
    held = sim.hold("GET", "/api/v3/account")  # answered only after the start gave up waiting for it
    engine = _engine(sim, tmp_path)
    try:
        assert held.held.is_set(), "the start-up valuation never asked the exchange"
        assert engine.health()["wallet_btc"] is None
        refused = engine.place_order(PAIR, "buy", "0.01", "59950").result(timeout=_WAIT_S)
        assert isinstance(refused, Refusal) and refused.reason is RefusalReason.WALLET_BELOW_MINIMUM, refused
    finally:
        held.release()
        engine.stop(graceful=False)


def _live(sim: Simulator, account: AccountSpec) -> Config:
    return Config.model_validate({
        "exchange": {"name": "binance", "rest_url": sim.urls.rest, "key": account.api_key, "secret": account.secret,
                     "pair_whitelist": [PAIR]},
        "execution": {"dry_run": False},
        "stream": NO_STREAMS,
    })  # fmt: skip


def _live_actors() -> list[Any]:
    return [ref for ref in pykka.ActorRegistry.get_all() if ref.is_alive()]


def test_live_mode_does_not_start_when_a_startup_check_fails(tmp_path: Path) -> None:
    account = AccountSpec(enable_withdrawals=True, api_key="K" * 64, secret="S" * 64)
    cfg = SimConfig(seed=1, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, accounts=[account])
    with Simulator(cfg) as sim:
        before = _live_actors()
        with pytest.raises(StartupChecksFailed, match="withdraw") as failed:
            Engine.start(_live(sim, account), database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                         spool_path=tmp_path / "s.jsonl")  # fmt: skip
        assert isinstance(failed.value, RuntimeError)  # what the daemon and scripts already catch
        assert "S" * 64 not in str(failed.value) and "K" * 64 not in str(failed.value)
        assert _live_actors() == before  # nothing left running
        assert sim.control.ledger()["orders"] == []
        # The documented (dangerous) opt-out: the caller takes the responsibility.
        engine = Engine.start(_live(sim, account), database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                              spool_path=tmp_path / "s.jsonl", skip_startup_checks=True)  # fmt: skip
        engine.stop(graceful=False)


def test_live_mode_starts_when_the_startup_checks_pass(tmp_path: Path) -> None:
    account = AccountSpec(api_key="K" * 64, secret="S" * 64)
    cfg = SimConfig(seed=1, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, accounts=[account])
    with Simulator(cfg) as sim:
        engine = Engine.start(_live(sim, account), database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                              spool_path=tmp_path / "s.jsonl")  # fmt: skip
        try:
            outcome = engine.place_order(PAIR, "buy", "0.001", "59000").result(timeout=_WAIT_S)
            assert isinstance(outcome, Accepted), outcome
        finally:
            engine.stop(graceful=False)


def test_a_stop_behind_a_dead_root_with_a_stuck_child_returns_once_the_root_gave_up_and_keeps_the_lock(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `stop()` behind a dead root waited for every child to have stopped: with one stuck, that is its whole
    # wait (180 s), although the root had already given up on it. It now waits for the root to be done trying.
    from actors.pair import PairActor
    from db import DatabaseInUseError

    monkeypatch.setattr("actors._supervision._ASK_TIMEOUT_S", 0.2)
    monkeypatch.setattr("engine.api._engine._STOP_WAIT_S", 15.0)

    def hold(self: Any, entered: threading.Event, release: threading.Event) -> None:
        entered.set()
        release.wait(_WAIT_S)

    monkeypatch.setattr(PairActor, "hold", hold, raising=False)
    engine = _engine(sim, tmp_path)
    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(str(m)), level="ERROR", format="{message}")
    entered, release = threading.Event(), threading.Event()
    stuck = engine._routing.get(PAIR)
    try:
        stuck.hold.defer(entered, release)
        assert entered.wait(_WAIT_S)
        engine._root.proxy().pair_refs.defer("an argument it does not take")  # kills the root
        engine.stop()
        assert engine._state.children_stop_over.is_set() and not engine._state.children_stopped.is_set()
        assert not any("did not stop within" in e and "dead root" in e for e in errors), errors
        assert any("database lock is kept" in e for e in errors), errors
        with pytest.raises(DatabaseInUseError):  # the stuck actor may still write: no second engine on it
            _engine(sim, tmp_path)
    finally:
        logger.remove(sink)
        release.set()
