"""Market guards for the fallback: the slippage bound and the volatility trigger. Pure; time passed in."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal, InvalidOperation
from enum import StrEnum

from engine.domain import Side, plain_decimal

__all__ = [
    "Book",
    "SlippageAction",
    "SlippageDecision",
    "VolatilityMonitor",
    "capped_detail",
    "check_slippage",
    "slippage_bound",
    "within_bound",
]


@dataclass(frozen=True, slots=True)
class Book:
    """Best bid and ask (bookTicker) at `time_ms`; either side may be missing on an empty book."""

    bid: Decimal | None
    ask: Decimal | None
    time_ms: int

    def __post_init__(self) -> None:
        # An empty side comes as "0.00000000" (bookTicker, the simulator): no price, not a price of zero — a
        # mid of half the market, an IOC sell bound at half the bid, a remainder valued at 0 and called dust.
        for side in ("bid", "ask"):
            value = getattr(self, side)
            if value is not None and (not value.is_finite() or value <= 0):
                object.__setattr__(self, side, None)

    @property
    def mid(self) -> Decimal | None:
        """(bid + ask) / 2, or the one side there is."""
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2
        return self.bid if self.bid is not None else self.ask

    def taker_price(self, side: Side) -> Decimal | None:
        """The price a marketable order of `side` meets first (ask for a buy, bid for a sell)."""
        return self.ask if side is Side.BUY else self.bid

    def maker_price(self, side: Side) -> Decimal | None:
        """The best price on the order's own side (bid for a buy, ask for a sell)."""
        return self.bid if side is Side.BUY else self.ask


class SlippageAction(StrEnum):
    """What to do when the market is beyond the slippage bound."""

    REFUSE = "refuse"
    """Send no fallback; report the remainder."""
    CAP = "cap"
    """Send the fallback as an IOC limit at the bound: it fills only what is within the bound."""


@dataclass(frozen=True, slots=True)
class SlippageDecision:
    """The slippage guard's verdict."""

    allowed: bool
    capped: bool
    bound: Decimal
    current: Decimal | None
    slippage: Decimal | None
    """(current − reference) / reference, signed so that positive is worse for the order's side."""
    reason: str | None
    details: Mapping[str, str] = field(default_factory=dict, hash=False)  # a dict: still hashable by the rest
    """The numbers of `reason` for code, exact plain decimals: `reference_price`, `bound`, `max_slippage`, and with a
    price on the book `market_price` and `slippage` (the fraction above)."""


def slippage_bound(side: Side, reference: Decimal, max_slippage: Decimal) -> Decimal:
    """The worst acceptable price: reference·(1 + max) for a buy, reference·(1 − max) for a sell."""
    return reference * (1 + max_slippage) if side is Side.BUY else reference * (1 - max_slippage)


def check_slippage(
    side: Side, reference: Decimal, book: Book, max_slippage: Decimal, action: SlippageAction
) -> SlippageDecision:
    """Compare the book with the reference price (the request's limit price, or the mid at request time)."""
    bound = slippage_bound(side, reference, max_slippage)
    current = book.taker_price(side)
    facts = {"reference_price": reference, "bound": bound, "max_slippage": max_slippage}
    if current is None or reference <= 0:
        return SlippageDecision(False, False, bound, None, None, "no price on the book to compare with", _plain(facts))
    slippage = (current - reference) / reference if side is Side.BUY else (reference - current) / reference
    details = _plain({**facts, "market_price": current, "slippage": slippage})
    if slippage <= max_slippage:
        return SlippageDecision(True, False, bound, current, slippage, None, details)
    reason = (f"market {plain_decimal(current)} is {_percent(slippage)} from reference {plain_decimal(reference)}, "
              f"beyond {_percent(max_slippage)}")  # fmt: skip
    if action is SlippageAction.CAP:
        capped = f"{reason}; capped at {plain_decimal(bound)}"
        return SlippageDecision(True, True, bound, current, slippage, capped, details)
    return SlippageDecision(False, False, bound, current, slippage, f"{reason}; refused", details)


def within_bound(side: Side, reference: Decimal | None, book: Book | None, max_slippage: Decimal) -> bool:
    """Is the market within the slippage bound of `reference` now (a fallback would go out uncapped)? A volatility
    spike skips a limit's wait only then: beyond the bound a capped IOC cannot fill (a refused fallback sends
    nothing), and the limit would be lost for it."""
    if book is None or reference is None:
        return False
    return check_slippage(side, reference, book, max_slippage, SlippageAction.REFUSE).allowed


def capped_detail(
    detail: str, bound: Decimal | None, reference: Decimal | None, max_slippage: Decimal
) -> tuple[str, dict[str, str]]:
    """`detail` of an IOC the guard capped at `bound` that ended with a remainder, with why and the numbers (from
    what is stored with the order: the same after a restart)."""
    facts = {"max_slippage": max_slippage} | ({"bound": bound} if bound is not None else {})
    facts |= {"reference_price": reference} if reference is not None else {}
    around = f" from reference {plain_decimal(reference)}" if reference is not None else ""
    at = f"; capped at {plain_decimal(bound)}" if bound is not None else ""
    return f"{detail} (slippage guard: the market was beyond {_percent(max_slippage)}{around}{at})", _plain(facts)


def _plain(numbers: Mapping[str, Decimal]) -> dict[str, str]:
    return {key: plain_decimal(value) for key, value in numbers.items()}


def _percent(fraction: Decimal) -> str:
    """A fraction as a percentage for a message, to 4 places and without trailing zeros (0.0123456 → "1.2346%").
    Away from zero: a slippage just past the maximum never reads as equal to it."""
    percent = fraction * 100
    # more digits than the context carries (an absurd price): shown exact rather than raising
    with contextlib.suppress(InvalidOperation):
        percent = percent.quantize(Decimal("0.0001"), rounding=ROUND_UP)
    return f"{plain_decimal(percent)}%"


class VolatilityMonitor:
    """Has the price moved more than `threshold` (a fraction, 0.02 = 2 %) within `window_ms`?

    Fed with (ms, price) observations from the price feed; the move is (max − min) / min over the window.
    """

    def __init__(self, window_ms: int, threshold: Decimal) -> None:
        if window_ms <= 0 or threshold <= 0:
            raise ValueError("window_ms and threshold must be > 0")
        self._window_ms = window_ms
        self._threshold = threshold
        self._points: deque[tuple[int, Decimal]] = deque()

    def observe(self, time_ms: int, price: Decimal) -> None:
        """Add one observation (out-of-order ones older than the newest are dropped)."""
        if price <= 0 or (self._points and time_ms < self._points[-1][0]):
            return
        self._points.append((time_ms, price))
        self._prune(time_ms)

    def _prune(self, now_ms: int) -> None:
        # The newest point older than the window stays: it is the price in force when the window began (a quiet
        # pair that jumps after a minute without updates moved from it, within the window).
        start = now_ms - self._window_ms
        while len(self._points) > 1 and self._points[1][0] <= start:
            self._points.popleft()

    def move(self, now_ms: int) -> Decimal:
        """The relative range of prices in force within the window ending at `now_ms`."""
        self._prune(now_ms)
        if len(self._points) < 2:
            return Decimal(0)
        prices = [p for _, p in self._points]
        low = min(prices)
        return (max(prices) - low) / low

    def triggered(self, now_ms: int) -> bool:
        """True when the move within the window exceeds the threshold."""
        return self.move(now_ms) > self._threshold
