"""Per-symbol market: mid price, depth around it, and per-tick trade volume (pure).

The depth is synthetic (levels 1 bp apart, the top about 2,000 × the minimum notional), except where an external
quote gave the venue's real size at its best price (``set_quote`` with sizes): level 0 of that side is then the
venue's size, less what orders here took of it since that price last changed (``VenueTop``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from sim._symbols import SymbolSpec

__all__ = ["SymbolMarket", "VenueTop"]

_ZERO = Decimal(0)

_HALF_SPREAD = Decimal("0.0001")  # 1 bp each side of the mid
_LEVEL_GAP = Decimal("0.0001")  # 1 bp between synthetic levels
_TOP_NOTIONAL_MULT = Decimal(2000)  # top level ≈ 2000 × min notional (10k USDT on USDT pairs)


@dataclass
class VenueTop:
    """The venue's best price on one side, the size it shows there, and how much of it orders here have taken.

    The venue never sees the orders here, so its size still includes what they took: only ``size - taken`` is
    left. ``taken`` lives as long as the price: a new price starts from zero. A later size at the same price
    keeps ``taken`` (so a larger size offers only its increase), capped at that size (a size that shrank below
    what was taken is taken up, and only a later increase is new).
    """

    price: Decimal
    size: Decimal
    taken: Decimal = _ZERO

    def show(self, size: Decimal) -> None:
        """The venue shows ``size`` at the same price."""
        self.size = size
        self.taken = min(self.taken, size)


@dataclass
class SymbolMarket:
    """Market state of one symbol.

    Synthetic liquidity taken by orders is consumed until the next price change, so two market orders in
    a row walk deeper into the book instead of getting the same prices. The venue's size at its best price
    (``venue_top``) is consumed until that price changes.
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
    # The venue's size at that bid / ask, per side ("bid", "ask"), when the quote gave it: level 0 of the side.
    venue_top: dict[str, VenueTop] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mid == 0:
            self.set_mid(self.spec.start_price)
            self.last_price = self.mid
            self.open_price = self.mid
            self.high = self.mid
            self.low = self.mid

    def set_mid(self, price: Decimal) -> None:
        """Move the mid price (rounded to the tick); resets consumed synthetic liquidity."""
        self._move(price)
        self.quote = None
        self.venue_top.clear()

    def _move(self, mid: Decimal) -> None:
        self.mid = self.spec.round_tick(mid)
        self.consumed_asks.clear()
        self.consumed_bids.clear()
        self._levels.clear()
        self.update_id += 1

    def quote_prices(self, bid: Decimal, ask: Decimal) -> tuple[Decimal, Decimal]:
        """``bid`` / ``ask`` as ``set_quote`` puts them: rounded to the tick, the ask at least a tick above the bid."""
        if bid <= 0 or ask <= 0:
            raise ValueError(f"bid and ask must be positive, got {bid} / {ask}")
        bid = self.spec.round_tick(bid)
        return bid, max(self.spec.round_tick(ask), bid + self.spec.tick_size)

    def set_quote(
        self, bid: Decimal, ask: Decimal, bid_qty: Decimal | None = None, ask_qty: Decimal | None = None
    ) -> bool:
        """Put the top of the book at ``bid`` / ``ask`` (rounded as ``quote_prices``); True if the prices moved.

        Synthetic depth is built behind them; the mid is their midpoint. ``set_mid`` returns to the synthetic spread.
        Without sizes every call is a move (synthetic liquidity taken so far is restored). With a side's size
        (``bid_qty`` / ``ask_qty``, the venue's quantity at that price) level 0 of that side is that size less what
        was taken of it at that price (``VenueTop``); a quote at the same prices then only updates the sizes, and
        what takers consumed of the synthetic levels stays consumed.
        """
        bid, ask = self.quote_prices(bid, ask)
        for qty in (bid_qty, ask_qty):
            if qty is not None and (not qty.is_finite() or qty < 0):
                raise ValueError(f"a quote size must be a non-negative number, got {qty}")
        sized = bid_qty is not None or ask_qty is not None
        moved = not sized or self.quote != (bid, ask)
        if moved:
            self._move((bid + ask) / 2)
            self.quote = (bid, ask)
        else:
            self.update_id += 1  # the sizes changed: a new book update all the same
        for side, price, qty in (("bid", bid, bid_qty), ("ask", ask, ask_qty)):
            top = self.venue_top.get(side)
            if qty is None:
                self.venue_top.pop(side, None)
            elif top is None or top.price != price:
                self.venue_top[side] = VenueTop(price, qty)
            else:
                top.show(qty)
        return moved

    def venue_left(self, side: str) -> Decimal | None:
        """What is left of the venue's size at its best price on ``side`` (lot-step floored); None if unknown."""
        top = self.venue_top.get(side)
        if top is None:
            return None
        return max(self.spec.floor_step(top.size - top.taken), _ZERO)

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
        """Levels ``(index, price, available qty)`` on ``side`` ("ask" or "bid"), best first.

        Level 0 is the venue's size where a quote gave it (``venue_left``); every other level is synthetic.
        """
        consumed = self.consumed_asks if side == "ask" else self.consumed_bids
        venue = self.venue_left(side)
        for idx, price, qty in self._side(side):
            if idx == 0 and venue is not None:
                yield idx, price, venue
            else:
                yield idx, price, qty - consumed[idx] if idx in consumed else qty

    def consume(self, side: str, index: int, qty: Decimal) -> None:
        """Take ``qty`` from level ``index`` on ``side`` (level 0: the venue's size, where a quote gave it)."""
        top = self.venue_top.get(side) if index == 0 else None
        if top is not None:
            top.taken += qty
            return
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
