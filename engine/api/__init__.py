"""The public Engine API: what callers import."""

from engine.api._engine import Engine, StartupChecksFailed
from engine.api._history import History
from engine.api._requests import EngineStopped, EngineTimeout
from engine.api._types import (
    Accepted,
    Cancellation,
    CancelOutcome,
    CancelStatus,
    EngineEvent,
    EngineListener,
    EventKind,
    Placement,
    PlaceOutcome,
    Refusal,
    RefusalReason,
)
from engine.domain import Priority

__all__ = [
    "Accepted",
    "CancelOutcome",
    "CancelStatus",
    "Cancellation",
    "Engine",
    "EngineEvent",
    "EngineListener",
    "EngineStopped",
    "EngineTimeout",
    "EventKind",
    "History",
    "PlaceOutcome",
    "Placement",
    "Priority",
    "Refusal",
    "RefusalReason",
    "StartupChecksFailed",
]
