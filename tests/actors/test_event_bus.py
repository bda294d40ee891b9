"""The event bus: listeners get every event; a `Publisher` skips the tell while nobody listens."""

from __future__ import annotations

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
