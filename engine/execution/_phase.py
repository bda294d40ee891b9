"""Where an execution plan stands, and the one timer it may wait on (split from `engine.execution._plan` for size)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Phase"]


class Phase(StrEnum):
    """Where the plan stands."""

    LIMIT_WORKING = "limit_working"
    CANCELING = "canceling"
    FALLBACK_WAIT = "fallback_wait"
    FALLBACK_WORKING = "fallback_working"
    DONE = "done"


@dataclass(slots=True)
class _Timer:
    at_ms: int
    what: str  # "limit_timeout" | "cancel_retry" | "fallback_retry"
