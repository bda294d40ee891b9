"""A taker order's path through the book (pure): synthetic depth and resting user orders, best price first.

Binance's book holds every account's resting orders next to the rest of the market, so a marketable order takes a
resting user order priced better than the next synthetic level first, and trades with it: one trade, seen by both
accounts. An order meeting a resting order of its own account is a self-trade, and self-trade prevention (STP)
decides what happens (binance-spot.md §7.1 `V`, `v`, `TRADE_PREVENTION`, `EXPIRED_IN_MATCH`): `EXPIRE_MAKER`
(every symbol's default) expires the resting order and the taker goes on; `EXPIRE_TAKER` expires the taker's
remainder; `EXPIRE_BOTH` both; `NONE` lets the two trade.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from sim._market import SymbolMarket
from sim._orders import Order

__all__ = ["STP_MODES", "Path", "Step", "cross"]

STP_MODES = frozenset({"NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"})
"""The prevention modes matched here; `DECREMENT` and `TRANSFER` are refused as unsupported (-1014)."""

_ZERO = Decimal(0)


@dataclass(frozen=True)
class Step:
    """One match of the taker: against synthetic `level`, or resting user order `maker` (`prevent`: STP expires it)."""

    price: Decimal
    qty: Decimal
    level: int = -1
    maker: Order | None = None
    prevent: bool = False


@dataclass(frozen=True)
class Path:
    """The taker's matches, best price first, and whether STP expires the taker's remainder after them."""

    steps: list[Step]
    taker_prevented: bool = False
    counter: Order | None = None  # the resting order that stopped the taker (EXPIRE_TAKER / EXPIRE_BOTH)

    @property
    def filled(self) -> Decimal:
        """Base quantity the taker trades along this path."""
        return sum((s.qty for s in self.steps if not s.prevent), _ZERO)

    @property
    def trades(self) -> list[Step]:
        """The steps that trade (prevented ones left out)."""
        return [s for s in self.steps if not s.prevent]


def cross(
    market: SymbolMarket,
    side: str,
    limit: Decimal | None,
    qty: Decimal | None,
    quote: Decimal | None,
    resting: Iterable[Order],
    account: str,
    stp_mode: str,
) -> Path:
    """The matches of a `side` taker of `account` up to `limit`, `qty` base or `quote` spent (lot-step truncated).

    `resting` are the open user orders of the symbol that are on the book; only the opposite side is considered.
    Nothing is committed: the caller consumes levels and fills orders along the returned path.
    """
    book_side, other = ("ask", "SELL") if side == "BUY" else ("bid", "BUY")
    sign = 1 if side == "BUY" else -1
    # (price rank, 0 = a user order first at a price (it was there first), tie-breaker, candidate)
    candidates: list[tuple[Decimal, int, int, Step]] = [
        (sign * price, 1, idx, Step(price=price, qty=avail, level=idx))
        for idx, price, avail in market.side_levels(book_side)
        if avail > 0
    ]
    candidates += [
        (sign * o.price, 0, o.order_id, Step(price=o.price, qty=o.remaining, maker=o))
        for o in resting
        if o.side == other and o.remaining > 0
    ]
    candidates.sort(key=lambda c: c[:3])
    steps: list[Step] = []
    left_qty, left_quote = qty, quote
    spec = market.spec
    for _rank, _kind, _tie, cand in candidates:
        if limit is not None and (cand.price > limit if side == "BUY" else cand.price < limit):
            break
        take = cand.qty
        if left_qty is not None:
            take = min(take, left_qty)
        if left_quote is not None:
            take = min(take, spec.floor_step(left_quote / cand.price))
        if take <= 0:
            break
        maker = cand.maker
        if maker is not None and maker.account == account and stp_mode != "NONE":
            if stp_mode in ("EXPIRE_MAKER", "EXPIRE_BOTH"):
                steps.append(Step(price=cand.price, qty=take, maker=maker, prevent=True))
            if stp_mode in ("EXPIRE_TAKER", "EXPIRE_BOTH"):
                return Path(steps, taker_prevented=True, counter=maker)
            continue  # EXPIRE_MAKER: the resting order leaves the book, the taker goes on
        steps.append(Step(price=cand.price, qty=take, level=cand.level, maker=maker))
        if left_qty is not None:
            left_qty -= take
            if left_qty <= 0:
                break
        if left_quote is not None:
            left_quote -= take * cand.price
    return Path(steps)
