"""The listener bus: order events fan out to subscribers on their own thread.

Pair actors `tell` events here and move on; a slow or failing listener can never stall or kill a pair actor
(each call is guarded, as in Mopidy's listener pattern).
"""

from __future__ import annotations

import itertools

import pykka
from loguru import logger

from engine.api import EngineEvent, EngineListener

__all__ = ["EventBus"]


class EventBus(pykka.ThreadingActor):
    """Holds the listeners and calls each one with every published event."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: dict[int, EngineListener] = {}
        self._ids = itertools.count(1)

    def subscribe(self, listener: EngineListener) -> int:
        """Add a listener; returns a token for `unsubscribe`."""
        token = next(self._ids)
        self._listeners[token] = listener
        return token

    def unsubscribe(self, token: int) -> bool:
        """Remove a listener; False if the token is unknown."""
        return self._listeners.pop(token, None) is not None

    def publish(self, event: EngineEvent) -> None:
        """Deliver `event` to every listener (use with `.defer`)."""
        for token, listener in list(self._listeners.items()):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a bad listener must not stop the others or the bus
                logger.bind(listener=token, pair=event.pair).exception("listener failed on {}", event.kind.value)
