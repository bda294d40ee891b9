"""The public Engine API: what callers import."""

from engine.api._engine import Engine, StartupChecksFailed
from engine.api._requests import EngineStopped, EngineTimeout
from engine.api._types import (
    Accepted,
    EngineEvent,
    EngineListener,
    EventKind,
    Placement,
    PlaceOutcome,
    Refusal,
    RefusalReason,
)

__all__ = [
    "Accepted",
    "Engine",
    "EngineEvent",
    "EngineListener",
    "EngineStopped",
    "EngineTimeout",
    "EventKind",
    "PlaceOutcome",
    "Placement",
    "Refusal",
    "RefusalReason",
    "StartupChecksFailed",
]
