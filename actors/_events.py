"""The listener bus: order events fan out to subscribers on their own thread.

Pair actors `tell` events here and move on; a slow or failing listener can never stall or kill a pair actor
(each call is guarded, as in Mopidy's listener pattern).

With nobody subscribed an event has nowhere to go, yet a `tell` still costs the sender an envelope, a lock
and a wake-up of this thread (3–4 per order). `EventBus.publisher()` gives senders a `Publisher`: a callable
that reads a flag the bus keeps current and tells the bus only while someone listens.
"""

from __future__ import annotations

import itertools

import pykka
from loguru import logger

from engine.api import EngineEvent, EngineListener

__all__ = ["EventBus", "Publisher"]


class Publisher:
    """Sends events to the bus only while it has listeners (callable from any thread; never blocks).

    An event published while the first listener is being added may miss it, exactly as an event told just
    before the subscription would.
    """

    def __init__(self, ref: pykka.ActorRef[EventBus]) -> None:
        self._tell = ref.tell
        self.has_listeners = False
        """Written by the bus thread only; a stale read costs one skipped or one wasted event at the edge."""

    def __call__(self, event: EngineEvent) -> None:
        """Publish `event` (a tell), or drop it at once when nobody listens."""
        if self.has_listeners:
            self._tell(_Publish(event))


class _Publish:
    """Inbox message of `Publisher` (a plain tell: no proxy call to build per event)."""

    __slots__ = ("event",)

    def __init__(self, event: EngineEvent) -> None:
        self.event = event


class EventBus(pykka.ThreadingActor):
    """Holds the listeners and calls each one with every published event."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: dict[int, EngineListener] = {}
        self._ids = itertools.count(1)
        self._publisher: Publisher | None = None

    def on_receive(self, message: object) -> object:
        if isinstance(message, _Publish):
            self.publish(message.event)
            return None
        return super().on_receive(message)

    def publisher(self) -> Publisher:
        """The sender-side callable (one per bus); its flag follows subscribe/unsubscribe."""
        if self._publisher is None:
            self._publisher = Publisher(self.actor_ref)
            self._publisher.has_listeners = bool(self._listeners)
        return self._publisher

    def has_listeners(self) -> bool:
        """True while at least one listener is subscribed."""
        return bool(self._listeners)

    def subscribe(self, listener: EngineListener) -> int:
        """Add a listener; returns a token for `unsubscribe`."""
        token = next(self._ids)
        self._listeners[token] = listener
        self._sync_flag()
        return token

    def unsubscribe(self, token: int) -> bool:
        """Remove a listener; False if the token is unknown."""
        removed = self._listeners.pop(token, None) is not None
        self._sync_flag()
        return removed

    def publish(self, event: EngineEvent) -> None:
        """Deliver `event` to every listener (use with `.defer`, or through `publisher()`)."""
        for token, listener in list(self._listeners.items()):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a bad listener must not stop the others or the bus
                logger.bind(listener=token, pair=event.pair).exception("listener failed on {}", event.kind.value)

    def _sync_flag(self) -> None:
        if self._publisher is not None:
            self._publisher.has_listeners = bool(self._listeners)
