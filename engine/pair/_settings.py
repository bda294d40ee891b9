"""Per-pair execution settings, derived from the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from engine.execution import ExecutionConfig

__all__ = ["PairSettings"]


@dataclass(frozen=True)
class PairSettings:
    """How a pair book executes requests. Percentages from the config are fractions here (0.5 % → 0.005).

    Attributes:
        execution: the limit → fallback policy, decided by `engine.execution.ExecutionPlan`.
        volatility_trigger / volatility_window_ms: a move of more than this fraction within the window
            cuts resting limits short (the book watches the prices, the plan decides).
        conflict_policy: a second request while one is executing is refused ("refuse"), or queued until the pair
            is free ("queue"); "parallel" runs requests of the same side at once (each its own plan, limit, timer,
            fallback and trade) and refuses one of the opposite side while any executes (self-trade).
        unknown_outcome_grace_ms: "not found" right after a create proves nothing for this long.
        max_create_resends: re-sends of a create that certainly did not execute (429, never created).
    """

    exchange: str = "binance"
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    volatility_trigger: Decimal = Decimal("0.02")
    volatility_window_ms: int = 60_000
    conflict_policy: Literal["refuse", "queue", "parallel"] = "refuse"
    unknown_outcome_grace_ms: int = 60_000
    max_create_resends: int = 3
