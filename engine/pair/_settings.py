"""Per-pair execution settings, derived from the configuration."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from engine.domain import FallbackKind
from engine.execution._guards import SlippageAction

__all__ = ["PairSettings"]


@dataclass(frozen=True)
class PairSettings:
    """How a pair book executes requests. Percentages from the config are fractions here (0.5 % → 0.005)."""

    exchange: str = "binance"
    limit_timeout_ms: int = 30_000
    fallback: FallbackKind = FallbackKind.MARKET
    limit_price_side: Literal["maker", "taker"] = "maker"
    max_slippage: Decimal = Decimal("0.005")
    slippage_action: SlippageAction = SlippageAction.CAP
    volatility_trigger: Decimal = Decimal("0.02")
    volatility_window_ms: int = 60_000
    conflict_policy: Literal["refuse", "queue"] = "refuse"
    unknown_outcome_grace_ms: int = 15_000
    max_create_resends: int = 3
    max_open_orders: int = 4
    max_order_notional: Decimal = Decimal(10_000)
