"""A listener stuck in its call is warned about as its backlog grows — WARNING at 1,000 queued events, then at every
tenfold, once each — while it is still stuck, and an INFO line says when it caught up. The check ran on the
listener's own thread, after each event it handled: a stuck listener never got there, and 6,959 events queued for it
with nothing in the log (scale review). The publisher counts and warns as it hands an event over."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from loguru import logger

from actors import _events
from actors._events import EventBus, Publisher
from engine.api import EngineEvent, EventKind
from engine.domain import Pair

GET = 10.0


def _event(n: int) -> EngineEvent:
    return EngineEvent(EventKind.ERROR, Pair("BTC/USDT"), datetime(2026, 1, 1, tzinfo=UTC), message=str(n))


class _Stuck:
    """Blocks in its first call until released (a listener waiting on a lock or a dead socket)."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, event: EngineEvent) -> None:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(GET)


class _Lines(list[str]):
    """The log's lines; `caught_up` is set at each "caught up" line."""

    def __init__(self) -> None:
        super().__init__()
        self.caught_up = threading.Event()

    def sink(self, message: object) -> None:
        record = message.record  # type: ignore[attr-defined]
        self.append(f"{record['level'].name} {record['message']}")
        if "caught up" in record["message"]:
            self.caught_up.set()


@pytest.fixture
def lines() -> Iterator[_Lines]:
    out = _Lines()
    handler = logger.add(out.sink, level="INFO")
    yield out
    logger.remove(handler)


def test_a_stuck_listener_is_warned_about_while_it_is_stuck_once_per_tenfold(lines: _Lines) -> None:
    ref = EventBus.start()
    try:
        bus = ref.proxy()
        publisher: Publisher = bus.publisher().get(timeout=GET)
        stuck = _Stuck()
        bus.subscribe(stuck).get(timeout=GET)
        publisher(_event(0))
        assert stuck.entered.wait(GET)  # inside its first call, for good
        total = _events._BACKLOG_FIRST * 10 + 5
        for i in range(1, total):
            publisher(_event(i))
        behind = [line for line in lines if "events behind" in line]
        assert [line.split(":")[0] for line in behind] == [
            "WARNING listener 1 is 1000 events behind",
            "WARNING listener 1 is 10000 events behind",
        ], behind
        assert not any("caught up" in line for line in lines)
        stuck.release.set()
        assert lines.caught_up.wait(GET), lines[-3:]  # said once its inbox is empty
        assert stuck.calls == total
        assert lines[-1] == "INFO listener 1 has caught up", lines[-3:]
        # Caught up, the thresholds start again: a new backlog is warned about at 1,000 once more.
        stuck.release.clear()
        stuck.entered.clear()
        publisher(_event(0))
        assert stuck.entered.wait(GET)
        for i in range(1, _events._BACKLOG_FIRST):
            publisher(_event(i))
        assert lines[-1].startswith("WARNING listener 1 is 1000 events behind"), lines[-1]
        stuck.release.set()
    finally:
        ref.stop(timeout=GET)
