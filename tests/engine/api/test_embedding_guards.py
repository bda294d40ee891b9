"""What hurt a strategy author embedding the engine (found by a lifecycle review): a script that raised before
`stop()` never exited; a query from an inline listener waited on its own actor; misspelt pairs in queries answered
"nothing"; arguments that were silently something else."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from engine.api import Engine, EventKind, Refusal, RefusalReason
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from sim import SimConfig, Simulator
from tests.engine.api.test_place_input import _Facade

PAIR = "BTC/USDT"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Simulator(SimConfig(seed=3, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as sim:
        config = Config.model_validate(
            {"stream": {"user_data": False, "market_data": False}, "exchange": {"pair_whitelist": [PAIR]}}
        )
        url, spool = f"sqlite:///{tmp_path}/e.sqlite3", tmp_path / "s.jsonl"
        started = Engine.start(config, clock=ManualClock(SystemClock().now_ms()), sim=sim, database_url=url,
                               spool_path=spool)  # fmt: skip
        try:
            yield started
        finally:
            started.stop(graceful=False)


def _script(tmp_path: Path, body: str, *, market_data: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `body` in a new interpreter after starting an engine (`engine`) on the embedded simulator."""
    head = textwrap.dedent(f"""
        import concurrent.futures, pathlib, sys, threading
        sys.path.insert(0, {str(REPO)!r})
        from engine.api import Engine
        from engine.config import Config
        config = Config.model_validate({{"exchange": {{"pair_whitelist": ["BTC/USDT"]}},
                                         "stream": {{"market_data": {market_data}}}}})
        engine = Engine.start(config, database_url="sqlite:///{tmp_path}/e.sqlite3",
                              spool_path=pathlib.Path({str(tmp_path)!r}) / "s.jsonl")
    """)
    script = head + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.timeout(120)
def test_a_script_that_raises_before_stop_still_exits(tmp_path: Path) -> None:
    # The actors' threads are not daemon threads: the interpreter waited for them for ever after the traceback.
    done = _script(tmp_path, 'raise RuntimeError("a strategy bug before engine.stop()")\n', market_data=False)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "a strategy bug before engine.stop()" in done.stderr
    assert "Engine.stop() never called): stopping it" in done.stderr


@pytest.mark.timeout(120)
def test_the_exit_stop_waits_for_the_programs_own_threads(tmp_path: Path) -> None:
    # Diff review: the exit hook runs when the main thread ends, before Python waits for the other threads: a
    # strategy on a worker thread had its resting orders canceled under it and its calls refused.
    body = """
        main_done = threading.Event()

        def strategy():
            main_done.wait()
            outcome = engine.place_order("BTC/USDT", "buy", "0.001", "50000").result(20)
            print("worker placed:", type(outcome).__name__, flush=True)
            print("worker stopped:", dict(engine.stop()), flush=True)

        threading.Thread(target=strategy).start()
        main_done.set()
    """
    done = _script(tmp_path, body, market_data=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "worker placed: Accepted" in done.stdout, (done.stdout, done.stderr[-2000:])
    assert "worker stopped: {'canceled': 1, 'open': 0" in done.stdout, done.stdout
    assert "Engine.stop() never called" not in done.stderr


@pytest.mark.timeout(120)
def test_a_forked_child_exits_at_once_while_the_engine_runs(engine: Engine) -> None:
    # Diff review: a child inherited the exit hook and the running engine's entry; its exit hung about 130 s
    # stopping a copy whose actors run only in the parent.
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=int)
    child.start()
    child.join(60)
    assert child.exitcode == 0, "the forked child did not exit"
    assert engine.actors_alive() and engine.open_orders(PAIR) == []


@pytest.mark.timeout(200)
@pytest.mark.parametrize(
    "body",
    [
        # the streams up (UBWA's threads are not daemon threads), then a strategy bug
        'assert engine.sim.control.wait_subscriptions(1, within_s=20)\nraise RuntimeError("a strategy bug")\n',
        'print(engine.cancel_order("BTC/USDT", "nope").result(30).status)\n',  # the engine's cancel thread ran
        "engine.stop()\nprint(concurrent.futures.ThreadPoolExecutor(2).submit(int).result())\n",  # an idle pool
    ],
    ids=["streams-up", "cancel-thread", "idle-pool"],
)
def test_the_exit_stop_does_not_wait_for_the_engines_or_a_pools_threads(tmp_path: Path, body: str) -> None:
    # Third review: the exit hook waited for every non-daemon thread not named like an actor: UBWA's, the engine's
    # cancel thread and idle pool workers never end before it, so scripts never exited again.
    done = _script(tmp_path, body)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert "waits for the program's threads" not in done.stderr


@pytest.mark.timeout(120)
def test_the_exit_stop_waits_for_a_pool_task_still_using_the_engine(tmp_path: Path) -> None:
    # Last review: every pool worker was taken for an idle one, and the engine was stopped under a strategy that
    # a pool still ran (`EngineStopped` at its next call). The task here starts once the main thread has ended
    # (an exit hook registered after the engine's runs before it) and stops the engine itself.
    body = """
        go = threading.Event()

        def strategy():
            go.wait(30)
            print("open orders:", engine.open_orders("BTC/USDT"), flush=True)
            engine.stop()

        concurrent.futures.ThreadPoolExecutor(1).submit(strategy)
        threading._register_atexit(go.set)
    """
    done = _script(tmp_path, body)
    assert "open orders: []" in done.stdout, done.stderr[-2000:]
    assert "Engine.stop() never called" not in done.stderr


def test_a_query_or_stop_from_an_inline_listener_is_refused_at_once(engine: Engine) -> None:
    caught: list[BaseException] = []
    seen = threading.Event()

    def listener(event: object) -> None:
        if getattr(event, "kind", None) is not EventKind.ACCEPTED or seen.is_set():
            return
        for call in (lambda: engine.get_order(PAIR, "x"), engine.stop):
            try:
                call()
            except RuntimeError as exc:
                caught.append(exc)
        seen.set()

    engine.subscribe(listener, inline=True)
    assert engine.place_order(PAIR, "buy", "0.001", "59000").result(20).accepted
    assert seen.wait(20)
    assert [str(e).split(" called on")[0] for e in caught] == ["get_order", "Engine.stop"], caught
    assert engine.actors_alive() and engine.open_orders(PAIR)  # the engine goes on


def test_queries_with_a_misspelt_pair_are_refused_not_answered_empty(engine: Engine) -> None:
    placed = engine.place_order(PAIR, "buy", "0.001", "59000").result(20)
    assert placed.accepted and len(engine.open_orders(PAIR)) == 1
    cid = placed.order.client_order_id
    for query in (lambda: engine.open_orders("BTCUSDT"), lambda: engine.get_order("btc/usdt", cid),
                  lambda: engine.order_detail("BTC-USDT", cid), lambda: engine.active_requests("BTC/USDT\n"),
                  lambda: engine.orders(pair="btc"), lambda: engine.trades(pair="BTCUSDT")):  # fmt: skip
        with pytest.raises(ValueError, match="BASE/QUOTE"):
            query()
    assert engine.get_order(PAIR, "a\udc80b") is None  # a lone surrogate: no such order (it raised from the driver)
    assert engine.get_order(PAIR, cid) is not None


def test_a_listener_or_a_pause_that_is_not_what_it_should_be_is_refused(engine: Engine) -> None:
    with pytest.raises(TypeError, match="listener"):
        engine.subscribe(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="True or False"):
        engine.pause("no")  # type: ignore[arg-type]
    assert not engine.halted


class _Numberish:
    """What numpy's float32 looks like to the check: not a float, but its text parses."""

    def __str__(self) -> str:
        return "0.1"


def test_a_priority_is_taken_by_its_name_in_any_letter_case() -> None:
    from engine.api import Priority

    facade = _Facade()
    for name in ("exit", "Fallback", "ENTRY"):
        assert not facade.place_order(PAIR, "buy", "0.001", "59000", priority=name).done()
    assert [r.priority for r in facade.told] == [Priority.EXIT, Priority.FALLBACK, Priority.ENTRY]
    refusal = facade.place_order(PAIR, "buy", "0.001", "59000", priority="cancel").result(0)
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.INVALID_REQUEST


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"priority": True}, "priority"),  # True is 1: the fallbacks' level
        ({"priority": 3.0}, "priority"),
        ({"amount": "0_001"}, "digit separators"),  # Decimal reads it as 1
        ({"amount": _Numberish()}, "money is never a float"),
        ({"price": "5_9000"}, "digit separators"),
    ],
)
def test_arguments_that_were_silently_something_else_are_refused(arguments: dict[str, object], message: str) -> None:
    facade = _Facade()
    outcome = facade.place_order(**{"pair": PAIR, "side": "buy", "amount": "0.001", "price": "59000", **arguments})  # type: ignore[arg-type]
    refusal = outcome.result(0)
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.INVALID_REQUEST
    assert message in refusal.message, refusal.message
