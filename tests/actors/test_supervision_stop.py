"""Stopping the root's children: `EngineState.children_stopped` (what lets `Engine.stop` release the database
lock) is set only when every child stopped, and persistence's final flush answered, within their timeouts.

The supervision mixin runs here as a plain object over real actors (no engine): a child is stuck in a message
until the test lets it go, so its stop times out for real. The timeouts are cut to a fraction of a second.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from loguru import logger

from actors._state import EngineState
from actors._supervision import SupervisionMixin
from actors._ticker import Ticker
from engine.clock import ManualClock
from engine.domain import Pair

_SAFETY_S = 30.0  # a stuck child lets go by itself past this, should a test fail before it releases it


class _Child(pykka.ThreadingActor):
    """A child that stops at once, unless it is held in `hold` until `release` is set."""

    def hold(self, entered: threading.Event, release: threading.Event) -> None:
        entered.set()
        release.wait(_SAFETY_S)


class _Store:
    """What `_stop_children` uses of the persistence handle: `flush` (a future) and `stop`."""

    def __init__(self, flush: pykka.Future[Any]) -> None:
        self._flush = flush
        self.stopped = False

    def flush(self) -> pykka.Future[Any]:
        return self._flush

    def stop(self, timeout: float) -> None:  # float-ok: seconds, as PersistenceHandle.stop
        self.stopped = True


class _Root(SupervisionMixin):
    def __init__(self, *, pairs: dict[Pair, Any], store: Any, bus: Any) -> None:
        self._state = EngineState()
        self._ticker = Ticker(ManualClock(0))
        self._timers = {}
        self._timers_stopped = False
        self._timer_lock = threading.Lock()
        self._stream_ref = None
        self._pairs = pairs
        self._books = {}  # no pair's callers are left to answer (`_answer_left_callers`)
        self._gateway_ref = None
        self._store = store
        self._bus = bus


def _flushed() -> pykka.Future[Any]:
    future: pykka.Future[Any] = pykka.ThreadingFuture()
    future.set("database")
    return future


@pytest.fixture(autouse=True)
def _short_timeouts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("actors._supervision._ASK_TIMEOUT_S", 0.2)
    yield
    pykka.ActorRegistry.stop_all(timeout=_SAFETY_S)


@pytest.fixture
def errors() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="ERROR", format="{message}")
    yield lines
    logger.remove(sink)


def test_every_child_stopped_and_flushed_sets_children_stopped(errors: list[str]) -> None:
    pair, bus, store = _Child.start(), _Child.start(), _Store(_flushed())
    root = _Root(pairs={Pair("BTC/USDT"): pair}, store=store, bus=bus)
    root._stop_children()
    assert root._state.children_stopped.is_set() and root._state.children_stop_over.is_set()
    assert not pair.is_alive() and not bus.is_alive() and store.stopped
    assert errors == []


def test_a_child_whose_stop_times_out_leaves_children_stopped_unset(errors: list[str]) -> None:
    # The lock was released although the stuck pair actor (it writes through persistence) could still run.
    stuck, bus, store = _Child.start(), _Child.start(), _Store(_flushed())
    entered, release = threading.Event(), threading.Event()
    stuck.proxy().hold.defer(entered, release)
    assert entered.wait(_SAFETY_S)
    root = _Root(pairs={Pair("BTC/USDT"): stuck}, store=store, bus=bus)
    try:
        root._stop_children()
        assert not root._state.children_stopped.is_set()
        assert root._state.children_stop_over.is_set()  # done trying: what a stop behind a dead root waits for
        assert not bus.is_alive() and store.stopped  # the others are stopped all the same
        assert any("did not stop" in line and "pair actor BTC/USDT" in line for line in errors), errors
    finally:
        release.set()
    assert stuck.stop(timeout=_SAFETY_S) is not None  # its stop was queued behind the hold: it ends now


def test_a_final_flush_not_answered_in_time_leaves_children_stopped_unset(errors: list[str]) -> None:
    unanswered: pykka.Future[Any] = pykka.ThreadingFuture()  # persistence still busy writing
    store = _Store(unanswered)
    root = _Root(pairs={}, store=store, bus=None)
    root._stop_children()
    assert not root._state.children_stopped.is_set()
    assert store.stopped
    assert any("did not stop" in line and "final flush" in line for line in errors), errors


def test_stopping_the_children_stops_the_timers(errors: list[str]) -> None:
    root = _Root(pairs={}, store=None, bus=None)
    fired: list[int] = []
    root._timers["t"] = root._ticker.call_later(1_000, fired.append)
    root._stop_children()
    assert root._timers_stopped and root._ticker.pending() == 0
    root._ticker.advance(2_000)
    assert fired == []


def test_a_final_flush_that_failed_still_lets_the_lock_go(errors: list[str]) -> None:
    # The disk full: the flush answered with an error, and the actor stopped. Counted as still running, it kept the
    # database lock until the process ended, and a new Engine in the same process was refused (disk-full review).
    failed: pykka.Future[Any] = pykka.ThreadingFuture()
    failed.set_exception((OSError, OSError(28, "No space left on device"), None))
    store = _Store(failed)
    root = _Root(pairs={}, store=store, bus=None)
    root._stop_children()
    assert root._state.children_stopped.is_set() and store.stopped
    assert any("final flush failed" in line for line in errors), errors
    assert not any("did not stop" in line for line in errors), errors
