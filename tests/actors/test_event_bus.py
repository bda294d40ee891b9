"""The event bus: listeners get every event; a `Publisher` skips the tell while nobody listens."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

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
    bus.subscribe(lambda e: seen.append(e.message)).get(timeout=GET)
    publisher = bus.publisher().get(timeout=GET)
    publisher(_event("one"))
    publisher(_event("two"))
    bus.has_listeners().get(timeout=GET)
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

    bus.subscribe(lambda e: bus_seen.append((e.message, threading.get_ident()))).get(timeout=GET)
    publisher(_event("two"))
    assert bus.unsubscribe(token).get(timeout=GET)
    publisher(_event("three"))
    bus.has_listeners().get(timeout=GET)  # barrier
    assert [m for m, _ in inline_seen] == ["one", "two"]
    assert [m for m, _ in bus_seen] == ["two", "three"]
    assert all(ident != threading.get_ident() for _, ident in bus_seen)
    assert ref.is_alive()
    ref.stop()
