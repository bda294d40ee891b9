"""The event bus: listeners get every event, each on its own thread; a `Publisher` skips the tell while nobody
listens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pykka
import pytest
from loguru import logger

from actors import _events
from actors._events import EventBus, Publisher
from engine.api import EngineEvent, EventKind
from engine.domain import Pair

GET = 10


def _event(message: str) -> EngineEvent:
    return EngineEvent(EventKind.ERROR, Pair("BTC/USDT"), datetime(2026, 1, 1, tzinfo=UTC), message=message)


def test_publisher_tells_only_while_someone_listens() -> None:
    ref = EventBus.start()
    bus = ref.proxy()
    publisher: Publisher = bus.publisher().get(timeout=GET)
    assert publisher is bus.publisher().get(timeout=GET)
    assert not publisher.has_listeners
    seen: list[str] = []

    publisher(_event("before"))  # nobody listens: dropped without a tell
    token = bus.subscribe(lambda e: seen.append(e.message)).get(timeout=GET)
    assert publisher.has_listeners and bus.has_listeners().get(timeout=GET)
    publisher(_event("during"))
    bus.publish.defer(_event("direct"))
    assert bus.unsubscribe(token).get(timeout=GET)  # the inbox keeps order: both events arrived first
    assert not publisher.has_listeners
    publisher(_event("after"))
    bus.has_listeners().get(timeout=GET)  # barrier
    assert seen == ["during", "direct"]
    ref.stop()


def test_a_failing_listener_does_not_stop_the_others() -> None:
    ref = EventBus.start()
    bus = ref.proxy()
    seen: list[str] = []

    def bad(_event: EngineEvent) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe(bad).get(timeout=GET)
    token = bus.subscribe(lambda e: seen.append(e.message)).get(timeout=GET)
    publisher = bus.publisher().get(timeout=GET)
    publisher(_event("one"))
    publisher(_event("two"))
    assert bus.unsubscribe(token).get(timeout=GET)  # after its queued events: a barrier on its thread
    assert seen == ["one", "two"]
    assert ref.is_alive()
    ref.stop()


def test_inline_listeners_run_on_the_publishing_thread_and_are_guarded() -> None:
    ref = EventBus.start()
    bus = ref.proxy()
    publisher: Publisher = bus.publisher().get(timeout=GET)
    inline_seen: list[tuple[str, int]] = []
    bus_seen: list[tuple[str, int]] = []

    def bad(_event: EngineEvent) -> None:
        raise RuntimeError("inline listener bug")

    bus.subscribe(bad, True).get(timeout=GET)
    token = bus.subscribe(lambda e: inline_seen.append((e.message, threading.get_ident())), True).get(timeout=GET)
    assert not publisher.has_listeners  # inline listeners alone need no tell to the bus
    publisher(_event("one"))  # the bad one raised first; the publisher went on
    assert inline_seen == [("one", threading.get_ident())]  # already delivered, on this thread

    threaded = bus.subscribe(lambda e: bus_seen.append((e.message, threading.get_ident()))).get(timeout=GET)
    publisher(_event("two"))
    assert bus.unsubscribe(token).get(timeout=GET)
    publisher(_event("three"))
    assert bus.unsubscribe(threaded).get(timeout=GET)  # after its queued events: a barrier on its thread
    assert [m for m, _ in inline_seen] == ["one", "two"]
    assert [m for m, _ in bus_seen] == ["two", "three"]
    assert all(ident != threading.get_ident() for _, ident in bus_seen)
    assert ref.is_alive()
    ref.stop()


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(f"{m.record['level'].name} {m.record['message']}"), level="INFO")
    yield lines
    logger.remove(sink)


class _Gate:
    """A listener that blocks on its first event until released; records what it was called with."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, event: EngineEvent) -> None:
        self.seen.append(event.message)
        self.entered.set()
        assert self.release.wait(GET)


def test_a_slow_listener_delays_only_itself() -> None:
    # One bus thread called every listener in turn: a listener blocked on I/O held back every other
    # listener's fills (a strategy's, behind a dashboard's).
    ref = EventBus.start()
    bus = ref.proxy()
    publisher: Publisher = bus.publisher().get(timeout=GET)
    slow = _Gate()
    fast: list[str] = []
    all_fast = threading.Event()

    def quick(event: EngineEvent) -> None:
        fast.append(event.message)
        if len(fast) == 3:
            all_fast.set()

    slow_token = bus.subscribe(slow).get(timeout=GET)
    bus.subscribe(quick).get(timeout=GET)
    for message in ("one", "two", "three"):
        publisher(_event(message))
    assert all_fast.wait(GET), fast
    assert slow.entered.wait(GET) and slow.seen == ["one"]  # still inside its first call
    unsubscribed = bus.unsubscribe(slow_token)  # waits for what is queued for it
    slow.release.set()
    assert unsubscribed.get(timeout=GET) is True
    assert slow.seen == ["one", "two", "three"]  # nothing lost, and nothing begins after unsubscribe
    ref.stop()


def test_a_listener_falling_behind_is_logged_and_so_is_its_catching_up() -> None:
    lines: list[str] = []
    caught_up = threading.Event()

    def sink(message: object) -> None:
        record = message.record  # type: ignore[attr-defined]
        lines.append(f"{record['level'].name} {record['message']}")
        if "caught up" in record["message"]:
            caught_up.set()

    handler = logger.add(sink, level="INFO")
    ref = EventBus.start()
    try:
        bus = ref.proxy()
        publisher: Publisher = bus.publisher().get(timeout=GET)
        slow = _Gate()
        bus.subscribe(slow).get(timeout=GET)
        for i in range(_events._BACKLOG_FIRST + 2):
            publisher(_event(str(i)))
        assert slow.entered.wait(GET)
        slow.release.set()
        assert caught_up.wait(GET), lines
        assert len(slow.seen) == _events._BACKLOG_FIRST + 2
        behind = [line for line in lines if "events behind" in line]
        assert behind == [f"WARNING listener 1 is {_events._BACKLOG_FIRST} events behind: it is slower than the "
                          "events come (the others are not delayed; memory grows with the backlog)"]  # fmt: skip
        assert "INFO listener 1 has caught up" in lines
    finally:
        ref.stop()
        logger.remove(handler)


def test_a_stuck_listener_is_dropped_after_the_drain_wait(monkeypatch: pytest.MonkeyPatch, warnings: list[str]) -> None:
    monkeypatch.setattr(_events, "DRAIN_S", 0.05)
    ref = EventBus.start()
    bus = ref.proxy()
    publisher: Publisher = bus.publisher().get(timeout=GET)
    stuck = _Gate()
    bus.subscribe(stuck).get(timeout=GET)
    for message in ("one", "two", "three"):
        publisher(_event(message))
    assert stuck.entered.wait(GET)
    (listener,) = pykka.ActorRegistry.get_by_class(_events._Listener)
    ref.stop(timeout=GET)  # the bus stops though its listener does not answer
    assert any("listener 1 still busy after 0s" in line for line in warnings)
    stuck.release.set()
    assert listener.actor_stopped.wait(GET)
    assert stuck.seen == ["one"]  # the queued events were dropped, not delivered after the stop
    publisher(_event("late"))  # a stale publisher after the stop: nothing is told, nothing raises
    assert stuck.seen == ["one"]


def test_a_listener_stuck_past_the_backlog_limit_is_dropped(
    monkeypatch: pytest.MonkeyPatch, warnings: list[str]
) -> None:
    # A listener that never returns let its inbox grow with every event until the process ran out of memory.
    monkeypatch.setattr(_events, "BACKLOG_LIMIT", 50)
    monkeypatch.setattr(_events, "_CHECK_EVERY", 8)
    monkeypatch.setattr(_events, "DRAIN_S", 0.05)
    ref = EventBus.start()
    bus = ref.proxy()
    publisher: Publisher = bus.publisher().get(timeout=GET)
    stuck = _Gate()
    fine: list[str] = []
    seen = threading.Condition()

    def keeps_up(event: EngineEvent) -> None:
        with seen:
            fine.append(event.message)
            seen.notify_all()

    bus.subscribe(stuck).get(timeout=GET)
    bus.subscribe(keeps_up).get(timeout=GET)
    publisher(_event("0"))
    assert stuck.entered.wait(GET)  # inside its first call, for good
    for i in range(1, 80):
        publisher(_event(str(i)))
        if i % 20 == 0:  # the other listener keeps up (its thread may be starved by this loop): not dropped
            with seen:
                assert seen.wait_for(lambda n=i + 1: len(fine) == n, GET)
    bus.has_listeners().get(timeout=GET)  # the bus took the drop (told before this ask)
    assert len(publisher.targets) == 1  # only the other listener is told now
    assert any(line.startswith("ERROR listener 1 dropped: 50 events behind") for line in warnings), warnings
    stuck.release.set()
    publisher(_event("after"))
    ref.stop(timeout=GET)
    assert stuck.seen == ["0"]  # what was queued for it was skipped once it returned
    assert fine[-1] == "after" and len(fine) == 81
