"""Price sources for the synthetic market (pure: no clock, no I/O)."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Protocol, runtime_checkable

__all__ = ["ExternalPriceSource", "PriceSource", "RandomWalkPriceSource"]


@runtime_checkable
class PriceSource(Protocol):
    """Where the per-symbol mid price comes from, one call per market tick."""

    def next_price(self, symbol: str, current: Decimal) -> Decimal:
        """Return the mid price of ``symbol`` for the next tick, given the current one."""
        ...


class RandomWalkPriceSource:
    """Seeded geometric random walk with jumps; one independent RNG stream per symbol.

    Per-symbol streams make a symbol's path independent of which other symbols are configured.
    """

    def __init__(
        self,
        seed: int,
        volatility: float = 0.0005,  # float-ok: model parameter, not money
        drift: float = 0.0,  # float-ok
        jump_probability: float = 0.001,  # float-ok
        jump_size: float = 0.02,  # float-ok
    ) -> None:
        self._seed = seed
        self._vol = volatility
        self._drift = drift
        self._jump_p = jump_probability
        self._jump_size = jump_size
        self._rngs: dict[str, random.Random] = {}

    def _rng(self, symbol: str) -> random.Random:
        rng = self._rngs.get(symbol)
        if rng is None:
            rng = random.Random(f"{self._seed}:price:{symbol}")
            self._rngs[symbol] = rng
        return rng

    def next_price(self, symbol: str, current: Decimal) -> Decimal:
        """One step of the walk: log-return = drift + vol·N(0,1) (+ a jump with small probability)."""
        rng = self._rng(symbol)
        log_ret = self._drift + self._vol * rng.gauss(0.0, 1.0)
        if self._jump_p > 0 and rng.random() < self._jump_p:
            log_ret += rng.gauss(0.0, self._jump_size)
        factor = math.exp(log_ret)
        return current * Decimal(repr(factor))


class ExternalPriceSource:
    """Prices pushed from outside (e.g. real public prices in dry-run mode); holds the last value."""

    def __init__(self) -> None:
        self._latest: dict[str, Decimal] = {}

    def push(self, symbol: str, price: Decimal) -> None:
        """Record the latest external mid price of ``symbol``."""
        if price <= 0:
            raise ValueError(f"price must be positive, got {price}")
        self._latest[symbol] = price

    def next_price(self, symbol: str, current: Decimal) -> Decimal:
        """The last pushed price, or the current one if nothing was pushed."""
        return self._latest.get(symbol, current)
