"""The Engine facade's answers to callers' mistakes: always a clear refusal or error, never a hang or a no-op."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.api import CancelStatus, Engine, EngineStopped, EngineTimeout, Refusal, RefusalReason
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from sim import SimConfig, Simulator

PAIR = "BTC/USDT"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Simulator(SimConfig(seed=3, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as sim:
        cfg = Config.model_validate(
            {"stream": {"user_data": False, "market_data": False}, "exchange": {"pair_whitelist": [PAIR]}}
        )
        clock = ManualClock(SystemClock().now_ms())
        url = f"sqlite:///{tmp_path}/e.sqlite3"
        started = Engine.start(cfg, clock=clock, sim=sim, database_url=url, spool_path=tmp_path / "s.jsonl")
        try:
            yield started
        finally:
            started.stop(graceful=False)


def test_a_context_that_is_not_a_mapping_is_an_invalid_request(engine: Engine) -> None:
    outcome = engine.place_order(PAIR, "buy", "0.001", "59000", context=["rsi", 30]).result(timeout=10)  # type: ignore[arg-type]
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.INVALID_REQUEST


@pytest.mark.parametrize("priority", [0, "cancel-level"])
def test_a_new_order_at_the_cancel_priority_is_refused_and_nothing_is_sent(engine: Engine, priority: object) -> None:
    # The cancel level lets a cancel overtake a backlog; a create there would queue ahead of the cancels.
    from engine.domain import Priority

    level = Priority.CANCEL if priority == "cancel-level" else priority
    outcome = engine.place_order(PAIR, "buy", "0.001", "59000", priority=level).result(timeout=10)  # type: ignore[arg-type]
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.INVALID_REQUEST
    assert "priority" in outcome.message
    assert engine.open_orders(PAIR) == []
    placed = engine.place_order(PAIR, "buy", "0.001", "59000", priority=Priority.EXIT).result(timeout=10)
    assert not isinstance(placed, Refusal), placed


def test_canceling_on_a_pair_outside_the_whitelist_is_answered_not_a_silent_no_op(engine: Engine) -> None:
    outcome = engine.cancel_order("ETH/USDT", "some-request").result(timeout=10)
    assert outcome.status is CancelStatus.NOT_WHITELISTED and not outcome.canceling, outcome
    assert "whitelist" in outcome.message


def test_after_stop_queries_raise_engine_stopped_and_a_placement_or_cancel_is_refused(engine: Engine) -> None:
    events: list[object] = []
    unsubscribe = engine.subscribe(events.append)
    engine.stop(graceful=False)
    for query in (
        engine.open_orders,
        lambda: engine.open_orders(PAIR),
        lambda: engine.get_order(PAIR, "bx-any"),
        lambda: engine.subscribe(events.append),
        engine.health,
        engine.balances,
        lambda: engine.order_detail(PAIR, "bx-any"),
        engine.orders,
        engine.trades,
    ):
        with pytest.raises(EngineStopped, match="the engine is stopped"):
            query()
    unsubscribe()  # nothing to undo: no error
    outcome = engine.place_order(PAIR, "buy", "0.001", "59000").result(timeout=10)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.SHUTTING_DOWN
    # A cancel, like a placement, is answered rather than raised.
    canceled = engine.cancel_order(PAIR, "some-request").result(timeout=10)
    assert canceled.status is CancelStatus.SHUTTING_DOWN and not canceled.canceling, canceled


def test_a_query_the_stop_overtakes_raises_engine_stopped_not_pykkas_error(engine: Engine) -> None:
    # The window inside `stop()`: the actors are stopped, the engine is not marked closed yet. A query asking
    # an actor then meets pykka's ActorDeadError (or a root without a persistence actor); the caller hears
    # EngineStopped, as after the stop.
    unsubscribe = engine.subscribe(lambda _event: None)
    engine._stopped = True
    engine._root.stop(timeout=30)
    assert not engine._closed
    for query in (
        engine.open_orders,
        lambda: engine.get_order(PAIR, "bx-any"),
        lambda: engine.subscribe(lambda _event: None),
        engine.health,
        engine.balances,
        lambda: engine.order_detail(PAIR, "bx-any"),
        engine.orders,
        engine.trades,
    ):
        with pytest.raises(EngineStopped, match="stopped while answering"):
            query()
    unsubscribe()  # the bus is gone with the stop: nothing to undo, no error
    engine.ticker.stop()  # the rest of that stop (the fixture's stop() waits for it: it is "under way")
    engine._stop_done.set()


def test_outside_a_stop_a_dead_actor_is_not_reported_as_a_stopped_engine(engine: Engine) -> None:
    import pykka

    engine._root.stop(timeout=30)
    with pytest.raises(pykka.ActorDeadError):
        engine.health()
    engine._stopped = True  # the actors are gone: the fixture's stop() has nothing left to ask
    engine.ticker.stop()
    engine._stop_done.set()


def test_a_query_an_actor_does_not_answer_in_time_raises_a_timeout_error(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pykka's Timeout is a plain Exception: the control API answered it 500 internal_error, not 504.
    import pykka

    class _Stuck:
        def get(self, timeout: float) -> object:  # float-ok: seconds
            raise pykka.Timeout(f"{timeout} seconds")

    root = SimpleNamespace(proxy=lambda: SimpleNamespace(health=_Stuck))
    monkeypatch.setattr(engine, "_root", root)
    try:
        with pytest.raises(EngineTimeout, match="no answer in time for") as caught:
            engine.health()
    finally:
        monkeypatch.undo()  # the engine's real root, for the fixture's stop
    assert isinstance(caught.value, TimeoutError)


def test_a_listener_raising_systemexit_stops_nothing(engine: Engine) -> None:
    # pykka stops every actor in the process when a non-Exception escapes one: a listener could kill the engine.

    def bad(_event: object) -> None:
        raise SystemExit(3)

    heard = threading.Event()
    engine.subscribe(bad)
    engine.subscribe(lambda event: heard.set() if event.kind.value == "accepted" else None)
    accepted = engine.place_order(PAIR, "buy", "0.001", "59000").result(timeout=20)
    assert not isinstance(accepted, Refusal), accepted
    assert heard.wait(20), "the other listener never heard the accepted event"
    assert engine.health()["halted"] is False  # the root (and its bus) still answer
    engine.subscribe(lambda _event: None)()  # a bus ask: alive


def test_a_placements_future_cannot_be_canceled_since_the_request_goes_on(engine: Engine) -> None:
    future = engine.place_order(PAIR, "buy", "0.001", "59000")
    assert future.cancel() is False  # it said True, and the order was placed all the same
    outcome = future.result(timeout=20)
    assert not isinstance(outcome, Refusal), outcome


def test_a_second_stop_waits_for_the_first_and_gets_its_summary(engine: Engine) -> None:
    placed = engine.place_order(PAIR, "buy", "0.001", "59000").result(timeout=20)
    assert not isinstance(placed, Refusal), placed
    summaries: list[Mapping[str, int]] = []
    first = threading.Thread(target=lambda: summaries.append(engine.stop()))
    first.start()
    second = engine.stop()  # from another thread while the first drains (or after it): not {} at once
    first.join(60)
    assert summaries == [second] and second == {"canceled": 1, "open": 0}


def test_the_jitter_seed_is_logged_and_replays_the_gateways_jitter(tmp_path: Path) -> None:
    import random

    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m.record["message"])), level="INFO")
    try:
        with Simulator(SimConfig(seed=3, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as sim:
            cfg = Config.model_validate({"stream": {"user_data": False, "market_data": False},
                                         "exchange": {"pair_whitelist": [PAIR]}})  # fmt: skip
            url = f"sqlite:///{tmp_path}/e.sqlite3"
            engine = Engine.start(cfg, sim=sim, database_url=url, spool_path=tmp_path / "s.jsonl", jitter_seed=7)
            try:
                gateway = engine._root.proxy().gateway.get(timeout=10)
                assert gateway._core._rng.random() == random.Random(7).random()
            finally:
                engine.stop(graceful=False)
    finally:
        logger.remove(sink)
    assert any("jitter seed 7" in line for line in lines), lines


def test_a_slow_listener_delays_only_itself_as_subscribe_says(engine: Engine) -> None:
    # Engine.subscribe's docstring said a listener delayed the bus's other listeners; each has its own thread.
    release, slow_heard, fast_heard = threading.Event(), threading.Event(), threading.Event()

    def slow(event: object) -> None:
        slow_heard.set()
        release.wait(30)

    engine.subscribe(slow)
    engine.subscribe(lambda event: fast_heard.set() if event.kind.value == "accepted" else None)
    try:
        accepted = engine.place_order(PAIR, "buy", "0.001", "59000").result(timeout=20)
        assert not isinstance(accepted, Refusal), accepted
        assert slow_heard.wait(20), "the slow listener never got the event"
        assert fast_heard.wait(20), "the other listener waited for the slow one"
    finally:
        release.set()


def test_an_order_asked_for_on_another_pair_is_not_found(tmp_path: Path) -> None:
    # get_order/order_detail looked the client order id up alone: ETH/USDT answered with a BTC/USDT order.
    prices = {"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    with Simulator(SimConfig(seed=3, symbols=list(prices), start_prices=prices)) as sim:
        cfg = Config.model_validate({"stream": {"user_data": False, "market_data": False},
                                     "exchange": {"pair_whitelist": [PAIR, "ETH/USDT"]}})  # fmt: skip
        url = f"sqlite:///{tmp_path}/e.sqlite3"
        engine = Engine.start(cfg, clock=ManualClock(SystemClock().now_ms()), sim=sim, database_url=url,
                              spool_path=tmp_path / "s.jsonl")  # fmt: skip
        try:
            accepted = engine.place_order(PAIR, "buy", "0.001", "59000").result(timeout=20)
            assert not isinstance(accepted, Refusal), accepted
            cid = accepted.order.client_order_id
            engine.orders(request_id=accepted.order.request_id)  # a barrier: persistence holds the order's row
            own = engine.get_order(PAIR, cid)
            assert own is not None and own.pair == PAIR
            detail = engine.order_detail(PAIR, cid)
            assert detail is not None and detail.order.client_order_id == cid
            assert engine.get_order("ETH/USDT", cid) is None  # live in BTC's actor, stored: neither is ETH's
            assert engine.order_detail("ETH/USDT", cid) is None
            assert engine.get_order("SOL/USDT", cid) is None  # a pair the engine does not trade at all
        finally:
            engine.stop(graceful=False)


def test_keeping_orders_on_the_embedded_simulator_warns_that_they_end_with_it(tmp_path: Path) -> None:
    # on_shutdown = "keep" kept nothing: the embedded simulator stops with the engine, and a restart showed the
    # "kept" orders open for a minute before concluding they had vanished. The stop says so now.
    from loguru import logger

    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m.record["message"])), level="WARNING")
    cfg = Config.model_validate({"stream": {"user_data": False, "market_data": False},
                                 "exchange": {"pair_whitelist": [PAIR]},
                                 "execution": {"on_shutdown": "keep"}})  # fmt: skip
    engine = Engine.start(cfg, database_url=f"sqlite:///{tmp_path}/e.sqlite3", spool_path=tmp_path / "s.jsonl")
    try:
        below = (engine.sim.control.price("BTCUSDT") * Decimal("0.99")).quantize(Decimal("0.01"))
        accepted = engine.place_order(PAIR, "buy", "0.001", below).result(timeout=20)
        assert not isinstance(accepted, Refusal), accepted
    finally:
        summary = engine.stop()
        logger.remove(sink)
    assert summary["open"] == 1 and summary["ended_with_simulator"] == 1, summary
    [said] = [w for w in warnings if "the simulated exchange this engine started stops with it" in w]
    assert said.startswith("engine stop: 1 open order(s) kept") and "finds them gone" in said


def test_orders_kept_on_a_simulator_the_caller_runs_are_not_said_to_end(engine: Engine) -> None:
    accepted = engine.place_order(PAIR, "buy", "0.001", "59000").result(timeout=20)
    assert not isinstance(accepted, Refusal), accepted
    summary = engine.stop(graceful=False)  # the fixture's simulator outlives the engine: the order is kept
    assert "ended_with_simulator" not in summary, summary


def test_a_stop_that_keeps_nothing_on_the_embedded_simulator_warns_of_nothing(tmp_path: Path) -> None:
    # Every stop that was not graceful warned "0 open order(s) kept … end with it": noise in every log.
    from loguru import logger

    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m.record["message"])), level="WARNING")
    cfg = Config.model_validate({"stream": {"user_data": False, "market_data": False},
                                 "exchange": {"pair_whitelist": [PAIR]}})  # fmt: skip
    engine = Engine.start(cfg, database_url=f"sqlite:///{tmp_path}/e.sqlite3", spool_path=tmp_path / "s.jsonl")
    try:
        summary = engine.stop(graceful=False)
    finally:
        logger.remove(sink)
    assert summary.get("ended_with_simulator", 0) == 0, summary
    assert not [w for w in warnings if "stops with it" in w], warnings
