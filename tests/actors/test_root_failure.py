"""The root actor's own failures: a told handler that raises is survived (alert `root_error`), and a root that
dies anyway stops its timers with its children, and still lets `Engine.stop` release the database.

The engine runs on the simulator with a manual clock: timers fire only when the test advances it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from loguru import logger

from engine.api import Engine
from engine.exchange import Banned, ExchangeError
from sim import Simulator
from tests.actors._crashes import manual_engine, two_pair_sim

_WAIT_S = 20.0


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with two_pair_sim() as simulator:
        yield simulator


@pytest.fixture
def engine(sim: Simulator, tmp_path: Path) -> Iterator[Engine]:
    started = manual_engine(sim, tmp_path)
    yield started
    started.stop(graceful=False)


@pytest.fixture
def log() -> Iterator[list[Any]]:
    records: list[Any] = []
    sink = logger.add(lambda m: records.append(m.record), level="WARNING")
    yield records
    logger.remove(sink)


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("boom")


def test_a_dead_roots_timers_stop_and_never_tell_it(
    engine: Engine, sim: Simulator, tmp_path: Path, log: list[Any]
) -> None:
    # The root died (a told message outside `survives`), its children were stopped, and its repeating timers
    # went on telling the dead root: an ActorDeadError traceback per timer, for ever (every 20 ms in the field).
    engine._root.proxy().pair_refs.defer("an argument it does not take")
    assert engine._state.children_stopped.wait(_WAIT_S) and not engine._root.is_alive()
    log.clear()
    engine.ticker.advance(61_000)  # every root timer (persistence tick 20 ms … wallet 60 s) comes due
    failed = [r for r in log if r["exception"] is not None or "timer callback failed" in r["message"]]
    assert not failed, f"{len(failed)} timer failures, the first: {failed[0]['message']}"
    assert engine.ticker.pending() == 0  # none re-armed

    engine.stop()  # tolerates the dead root, and releases the database lock: a new engine starts on it
    second = manual_engine(sim, tmp_path)
    second.stop(graceful=False)


def _critical(root: Any) -> Any:
    return root.on_critical.defer(ExchangeError("invalid API key"))


def _ban_over(root: Any) -> Any:
    return root.ban_over.defer(0)  # 0: no ban was recorded, the check goes on to the halt causes


@pytest.mark.parametrize(
    ("tell", "state_method", "handler"), [(_critical, "halt", "on_critical"), (_ban_over, "halt_causes", "ban_over")]
)
def test_a_critical_error_or_ban_end_that_raises_is_survived_and_alerted(
    engine: Engine,
    log: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    tell: Callable[[Any], Any],
    state_method: str,
    handler: str,
) -> None:
    # Either told message raising killed the root: no supervisor, no restarts, nothing reached by Engine.stop.
    monkeypatch.setattr(engine._state, state_method, _boom)
    root = engine._root.proxy()
    tell(root)
    try:
        root.pair_refs().get(timeout=_WAIT_S)  # barrier through the root's inbox
    except pykka.ActorDeadError:
        pytest.fail("the root died of a told message")
    monkeypatch.undo()
    assert engine._root.is_alive()
    # The handler's own alert, not the one of a root that died ("the root actor died (RuntimeError('boom'))").
    assert any(f"ALERT root_error: {handler} failed: RuntimeError: boom" in r["message"] for r in log), log


@pytest.mark.parametrize("error", [ExchangeError("invalid API key"), Banned("IP banned", retry_after_s=60)])
def test_a_stop_trading_error_halts_new_orders_even_when_its_alert_fails(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, error: ExchangeError
) -> None:
    # Under `survives`, a stop-trading error whose alert raised (a sink that failed) left the engine trading:
    # the alert went out first and the halt was never reached. The halt now comes first, whatever fails after.
    actor = engine._root._actor_weakref()  # the root itself: its alert sink is not reachable through a proxy
    sink = actor._alerts

    def failing_sink(key: str, message: str) -> None:
        if key == "stop_trading":
            raise RuntimeError("boom")
        sink(key, message)  # `survives` still reports the failure (root_error)

    monkeypatch.setattr(actor, "_alerts", failing_sink)
    root = engine._root.proxy()
    root.on_critical.defer(error)
    root.pair_refs().get(timeout=_WAIT_S)  # barrier through the root's inbox
    monkeypatch.undo()
    assert engine._root.is_alive() and engine.halted
