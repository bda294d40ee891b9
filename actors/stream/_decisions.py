"""What the stream watchdog tells its actor: health reports and the decisions it returns (pure data).

`StreamWatch` (``_watch``) never acts itself; it returns a list of these and the stream actor carries them out
in order. `StreamHealth` is also what goes up to the supervisor through ``on_health``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "MARKET_QUIET_MS",
    "CreateStream",
    "Decision",
    "FireGap",
    "HealthState",
    "ReportHealth",
    "ResyncClock",
    "ScheduleRecreate",
    "SendProbe",
    "StopStream",
    "StreamHealth",
    "StreamRole",
    "quiet_change",
]

MARKET_QUIET_MS = 30_000
"""A market stream that received nothing for this long is reported `QUIET`. Each whitelisted pair's best bid/ask
moves many times a second on a live market, so this is a stalled feed (a server still answering pings), not calm:
the book must not freeze, the root polls prices over REST until frames come again. The connection is kept."""


class StreamRole(StrEnum):
    """Which stream a health report or decision is about."""

    USER = "user"
    MARKET = "market"


class HealthState(StrEnum):
    """What the supervisor needs to know about a stream."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    QUIET = "quiet"
    """Market stream: connected, but nothing received for `MARKET_QUIET_MS` (prices are polled meanwhile)."""
    SILENT = "silent"
    RECONNECTING = "reconnecting"
    UNREPAIRABLE = "unrepairable"
    FATAL = "fatal"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """One health report (sent through ``on_health``)."""

    stream: StreamRole
    state: HealthState
    reason: str
    since_ms: int
    reconnects: int
    stream_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReportHealth:
    """Tell the supervisor the new health (`warn`: log it at WARNING, the operator should see it)."""

    health: StreamHealth
    warn: bool = False


@dataclass(frozen=True, slots=True)
class FireGap:
    """Events may have been lost: reconcile over REST now."""

    reason: str


@dataclass(frozen=True, slots=True)
class SendProbe:
    """Send a ``session.status`` request with this id on the stream."""

    stream_id: str
    probe_id: str


@dataclass(frozen=True, slots=True)
class StopStream:
    """Stop this UBWA stream (we take over reconnecting)."""

    stream_id: str


@dataclass(frozen=True, slots=True)
class CreateStream:
    """Create a new UBWA stream now (the attempt is already counted in the budget)."""


@dataclass(frozen=True, slots=True)
class ScheduleRecreate:
    """Call `StreamWatch.recreate_due` after this delay (0: right away)."""

    delay_ms: int


@dataclass(frozen=True, slots=True)
class ResyncClock:
    """The exchange refused the subscription's timestamp (-1021): re-measure the clock offset before retrying."""


Decision = ReportHealth | FireGap | SendProbe | StopStream | CreateStream | ScheduleRecreate | ResyncClock


def quiet_change(health: StreamHealth | None, live: bool, quiet_for_ms: int) -> tuple[HealthState, str] | None:
    """The market stream's health move between `CONNECTED` and `QUIET`, if any, after `quiet_for_ms` of nothing
    received while `live`."""
    state = health.state if health is not None else None
    if live and state is HealthState.CONNECTED and quiet_for_ms >= MARKET_QUIET_MS:
        return HealthState.QUIET, f"nothing received for {quiet_for_ms} ms; prices are polled over REST"
    if live and state is HealthState.QUIET and quiet_for_ms < MARKET_QUIET_MS:
        return HealthState.CONNECTED, "receiving again"
    return None
