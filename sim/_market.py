"""Per-symbol synthetic market: mid price, depth around it, and per-tick trade volume (pure)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from sim._symbols import SymbolSpec

__all__ = ["SymbolMarket"]

_HALF_SPREAD = Decimal("0.0001")  # 1 bp each side of the mid
_LEVEL_GAP = Decimal("0.0001")  # 1 bp between synthetic levels
_TOP_NOTIONAL_MULT = Decimal(2000)  # top level ≈ 2000 × min notional (10k USDT on USDT pairs)


@dataclass
class SymbolMarket:
    """Synthetic market state of one symbol.

    Synthetic liquidity taken by orders is consumed until the next price change, so two market orders in
    a row walk deeper into the book instead of getting the same prices.
    """

    spec: SymbolSpec
    levels: int
    volume_mult: float  # float-ok: model parameter
    rng: random.Random
    mid: Decimal = Decimal(0)
    last_price: Decimal = Decimal(0)
    last_qty: Decimal = Decimal(0)
    open_price: Decimal = Decimal(0)
    high: Decimal = Decimal(0)
    low: Decimal = Decimal(0)
    volume: Decimal = Decimal(0)
    quote_volume: Decimal = Decimal(0)
    trade_count: int = 0
    first_trade_id: int = -1
    last_trade_id: int = -1
    update_id: int = 1
    consumed_asks: dict[int, Decimal] = field(default_factory=dict)
    consumed_bids: dict[int, Decimal] = field(default_factory=dict)
    _levels: dict[str, list[tuple[int, Decimal, Decimal]]] = field(default_factory=dict)
    # Best bid and ask pushed from outside (`set_quote`, e.g. a real venue's bookTicker); None = synthetic spread.
    quote: tuple[Decimal, Decimal] | None = None

    def __post_init__(self) -> None:
        if self.mid == 0:
            self.set_mid(self.spec.start_price)
            self.last_price = self.mid
            self.open_price = self.mid
            self.high = self.mid
            self.low = self.mid

    def set_mid(self, price: Decimal) -> None:
        """Move the mid price (rounded to the tick); resets consumed synthetic liquidity."""
        self.mid = self.spec.round_tick(price)
        self.quote = None
        self.consumed_asks.clear()
        self.consumed_bids.clear()
        self._levels.clear()
        self.update_id += 1

    def set_quote(self, bid: Decimal, ask: Decimal) -> None:
        """Put the top of the book at ``bid`` / ``ask`` (rounded to the tick; the ask stays a tick above the bid).

        Synthetic depth is built behind them; the mid is their midpoint. ``set_mid`` returns to the synthetic spread.
        """
        if bid <= 0 or ask <= 0:
            raise ValueError(f"bid and ask must be positive, got {bid} / {ask}")
        tick = self.spec.tick_size
        bid = self.spec.round_tick(bid)
        ask = max(self.spec.round_tick(ask), bid + tick)
        self.set_mid((bid + ask) / 2)
        self.quote = (bid, ask)

    @property
    def best_bid(self) -> Decimal:
        """Top synthetic bid price as set by the last move (level 0, even once taken: see ``top``)."""
        return self._side("bid")[0][1]

    @property
    def best_ask(self) -> Decimal:
        """Top synthetic ask price as set by the last move (always at least one tick above the bid)."""
        return self._side("ask")[0][1]

    def top(self, side: str) -> tuple[Decimal, Decimal] | None:
        """Best ``(price, available qty)`` on ``side`` ("ask" or "bid") with quantity left; None if all is taken.

        Taker orders empty levels until the next price change; an emptied level is no longer the top of the book.
        """
        for _, price, qty in self.side_levels(side):
            if qty > 0:
                return price, qty
        return None

    def _side(self, side: str) -> list[tuple[int, Decimal, Decimal]]:
        # Levels depend only on the mid, so they are built once per price change.
        cached = self._levels.get(side)
        if cached is not None:
            return cached
        spec = self.spec
        tick = spec.tick_size
        if self.quote is not None:
            bid, ask = self.quote
        else:
            bid = max(tick, (self.mid * (1 - _HALF_SPREAD) / tick).to_integral_value(ROUND_FLOOR) * tick)
            ask = max((self.mid * (1 + _HALF_SPREAD) / tick).to_integral_value(ROUND_CEILING) * tick, bid + tick)
        gap = max(tick, (self.mid * _LEVEL_GAP / tick).to_integral_value(ROUND_CEILING) * tick)
        top = max(spec.floor_step(spec.min_notional * _TOP_NOTIONAL_MULT / self.mid), spec.step_size)
        levels: list[tuple[int, Decimal, Decimal]] = []
        start, sign = (ask, 1) if side == "ask" else (bid, -1)
        for i in range(max(self.levels, 1)):
            price = start + sign * gap * i
            if price <= 0:
                break
            levels.append((i, price, spec.floor_step(top * (1 + Decimal(i) / 2))))
        self._levels[side] = levels
        return levels

    def level_qty(self, index: int) -> Decimal:
        """Original size of synthetic level ``index`` (0 = top); deeper levels are larger."""
        return self._side("ask")[index][2]

    def side_levels(self, side: str) -> Iterator[tuple[int, Decimal, Decimal]]:
        """Synthetic levels ``(index, price, available qty)`` on ``side`` ("ask" or "bid"), best first."""
        consumed = self.consumed_asks if side == "ask" else self.consumed_bids
        for idx, price, qty in self._side(side):
            yield idx, price, qty - consumed[idx] if idx in consumed else qty

    def consume(self, side: str, index: int, qty: Decimal) -> None:
        """Take ``qty`` from synthetic level ``index`` on ``side``."""
        book = self.consumed_asks if side == "ask" else self.consumed_bids
        book[index] = book.get(index, Decimal(0)) + qty

    def tick_volume(self) -> Decimal:
        """Seeded synthetic volume traded through the book in one tick (shared by resting orders)."""
        factor = self.rng.expovariate(1.0) * self.volume_mult
        return self.spec.floor_step(self.level_qty(0) * Decimal(repr(factor)))

    def record_trade(self, trade_id: int, price: Decimal, qty: Decimal) -> None:
        """Update the 24 h statistics with one trade."""
        self.last_price = price
        self.last_qty = qty
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.volume += qty
        self.quote_volume += price * qty
        self.trade_count += 1
        if self.first_trade_id < 0:
            self.first_trade_id = trade_id
        self.last_trade_id = trade_id
