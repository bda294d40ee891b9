"""The shutdown under `on_shutdown = cancel`, through the whole engine against the simulator: what it stores
of its cancels.

The cancel is stored as the shutdown's, not the caller's: the trade's note and `requests.canceled` (what a
restart reads to resume no fallback) say so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from db import connect, get_trade, request_of
from engine.api import Accepted, Engine
from engine.domain import Pair
from sim import Simulator
from tests.actors._crashes import BTC, ETH, exhaust_restart_budget, manual_engine, two_pair_sim

_SHUTDOWN = "canceled at shutdown (on_shutdown = cancel)"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with two_pair_sim() as simulator:
        yield simulator


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Engine]]:
    # The shutdown waits this long for cancels that will not be confirmed (vanished orders): not 15 s a wait here.
    monkeypatch.setattr("actors._supervision._ASK_TIMEOUT_S", 3.0)
    engines: list[Engine] = []

    def _start(on: Simulator, **execution: str) -> Engine:
        engine = manual_engine(on, tmp_path, **execution)
        engines.append(engine)
        return engine

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


def _resting(engine: Engine, pair: Pair, price: str, amount: str = "0.01") -> Accepted:
    outcome = engine.place_order(pair, "buy", amount, price).result(timeout=20)
    assert isinstance(outcome, Accepted), outcome
    return outcome


def _read(tmp_path: Path, fn: Any, *args: Any) -> Any:
    handle = connect(f"sqlite:///{tmp_path}/engine.sqlite3")
    try:
        return fn(handle, *args)
    finally:
        handle.close()


def test_the_shutdowns_cancel_is_stored_as_the_shutdowns_not_the_callers(
    start: Any, sim: Simulator, tmp_path: Path
) -> None:
    engine = start(sim)
    eth = _resting(engine, ETH, "2990", "0.1")
    btc = _resting(engine, BTC, "59950")
    exhaust_restart_budget(engine, BTC)  # its book is run by the root: the other path of the shutdown's cancel
    assert engine.stop() == {"canceled": 2, "open": 0}
    for accepted in (eth, btc):
        request_id = accepted.order.request_id
        stored = _read(tmp_path, request_of, request_id)
        # Still set (a restart resumes no fallback for it), with the true reason.
        assert stored is not None and stored.canceled == _SHUTDOWN, stored
        trade = _read(tmp_path, get_trade, request_id)
        assert trade is not None and _SHUTDOWN in trade.note and "by the caller" not in trade.note, trade
