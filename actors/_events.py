"""The listener bus: order events fan out to subscribers on their own thread.

Pair actors `tell` events here and move on; a slow or failing listener can never stall or kill a pair actor
(each call is guarded, as in Mopidy's listener pattern).

A listener may instead ask to be called *inline*: on the producing actor's own thread (the pair actor, for
an order's events), before the event goes to the bus. That saves the hop to the bus thread (≈ 0.1–1 ms under
load, the largest share of a fill's latency after the pair actor's own work), at the price of the isolation
above: an inline listener delays its pair by its own duration, so it must be quick and never block. It is
still guarded (an exception is logged and ignored). Events of one pair arrive in order; events of different
pairs may interleave differently than on the bus.

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
        self.inline: tuple[tuple[int, EngineListener], ...] = ()
        """Inline listeners (token, listener); replaced whole by the bus thread, read by any sender."""

    def __call__(self, event: EngineEvent) -> None:
        """Call the inline listeners here, then publish `event` to the bus (a tell) if anyone listens there."""
        for token, listener in self.inline:
            _deliver(token, listener, event)
        if self.has_listeners:
            self._tell(_Publish(event))


def _deliver(token: int, listener: EngineListener, event: EngineEvent) -> None:
    try:
        listener(event)
    except BaseException:  # noqa: BLE001 - a bad listener must not stop the others, the bus or a pair actor
        # BaseException too: a SystemExit (or any non-Exception) escaping an actor makes pykka stop every actor
        # in the process, the engine with it, silently. A listener cannot stop the engine this way.
        logger.bind(listener=token, pair=event.pair).exception("listener failed on {}", event.kind.value)


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
        self._inline: dict[int, EngineListener] = {}
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
            self._sync_flag()
        return self._publisher

    def has_listeners(self) -> bool:
        """True while at least one listener is subscribed."""
        return bool(self._listeners)

    def subscribe(self, listener: EngineListener, inline: bool = False) -> int:
        """Add a listener (called on this bus's thread, or `inline` on the producer's); returns a token for
        `unsubscribe`."""
        token = next(self._ids)
        (self._inline if inline else self._listeners)[token] = listener
        self._sync_flag()
        return token

    def unsubscribe(self, token: int) -> bool:
        """Remove a listener; False if the token is unknown."""
        removed = (self._listeners.pop(token, None) or self._inline.pop(token, None)) is not None
        self._sync_flag()
        return removed

    def publish(self, event: EngineEvent) -> None:
        """Deliver `event` to every bus listener (use with `.defer`, or through `publisher()`)."""
        for token, listener in list(self._listeners.items()):
            _deliver(token, listener, event)

    def _sync_flag(self) -> None:
        if self._publisher is not None:
            self._publisher.has_listeners = bool(self._listeners)
            self._publisher.inline = tuple(self._inline.items())
