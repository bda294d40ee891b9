"""The phases of a watched stream, and the constants the watch shares with its callers (pure)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FIRST_SUBSCRIPTION"]

FIRST_SUBSCRIPTION = "first subscription"
"""The gap a user stream starts with (fired once its first subscription is proven live)."""
_UBWA_TRIES = 3
"""UBWA's own reconnect tries (0.1 s apart) let run since the stream was last live before the watch takes over with
its backoff: the first tries of an outage are the likeliest to succeed, the rest would only spend the budget."""


class _Phase(StrEnum):
    IDLE = "idle"
    CREATING = "creating"  # CreateStream returned, waiting for `created`
    CONNECTING = "connecting"  # UBWA is opening the first socket
    SUBSCRIBING = "subscribing"  # socket up, subscription not yet proven
    LIVE = "live"
    RECONNECTING = "reconnecting"  # UBWA reconnects on its own
    BACKOFF = "backoff"  # our stream is stopped; waiting to recreate
    FATAL = "fatal"
    STOPPED = "stopped"
