"""Binance's own rate budget, kept from its headers and limits — pure, time passed in (server time).

Binance counts request weight per IP per minute and unfilled orders per account per 10 s and per UTC day, in
fixed windows that reset on the server clock's boundaries (each minute, :00/:10/… s, 00:00 UTC). Every response
says how much of each window is used (`X-MBX-USED-WEIGHT-1M`, `X-MBX-ORDER-COUNT-10S`, `-1D`), other processes
included. The budget charges each request when admitted and admits only while every window stays within
limit − margin. Weight only grows within a window: the larger of the local and the server's count. The unfilled
order count falls as orders fill: the server's latest count plus the creates it may not include yet.

A 429 -1003 (weight) or 418 stops everything until Retry-After (a 418 ban also halts new orders); a 429 -1015
(too many new orders) holds only creates, as cancels and lookups must keep flowing. Successful order placement
and cancel cost 0 weight since 2026-04-02, failed ones are charged: `release` refunds a successful one's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from loguru import logger

from engine.exchange._ratelimits import (
    DEFAULT_LIMITS,
    ENDPOINT_WEIGHTS,
    INTERVAL_MS,
    EndpointKind,
    LimitKind,
    RateLimit,
)

__all__ = [
    "DEFAULT_LIMITS",
    "ENDPOINT_WEIGHTS",
    "ORDER_WINDOW_GUARD_MS",
    "Admit",
    "EndpointKind",
    "LimitKind",
    "RateBudget",
    "RateLimit",
    "Wait",
]

_SECOND: Final = 1000
_HEADER_LETTER: Final[Mapping[str, str]] = {"S": "SECOND", "M": "MINUTE", "H": "HOUR", "D": "DAY"}
_HEADER_RE: Final = re.compile(r"^x-mbx-(used-weight|order-count)-(\d+)([smhd])$")
_MAX_HEADER_NAMES: Final = 256
_LONG_ORDER_WINDOW_MS: Final = 3_600_000
_LONG_WINDOW_SLACK_MS: Final = 60_000
"""A -1015 for a window of an hour or more (a day's count), sent less than this after the window began, was counted
in the window before."""
ORDER_WINDOW_GUARD_MS: Final = 200
"""A create admitted this soon after an order-count window began may still reach the server in the previous one
(our estimate of its clock is off by a few ms, the request takes a few more): it waits while that one is full."""


@dataclass(frozen=True, slots=True)
class Admit:
    """Permission to send one request now. Give it back to `release` when the response arrives."""

    endpoint: EndpointKind
    weight: int
    admitted_ms: int
    orders_ms: int | None = None
    """For a create sent in a later order-count window than it was admitted in: when it left (`RateBudget.sent`)."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now: ask again at `until_ms`. `reason` says which window or Retry-After is in the way.

    `orders_only`: only an order-count limit is in the way (a full ORDERS window, a -1015 or 418 hold on
    creates), so requests other than creates may still be admitted meanwhile.
    """

    until_ms: int
    reason: str
    orders_only: bool = False


@dataclass(slots=True)
class _Window:
    orders: bool = False  # an ORDERS window: its count falls as orders fill, so the server's latest count stands
    start_ms: int = -1
    local: int = 0  # charged by this budget (minus refunds); for ORDERS: the creates admitted in the window
    server: int = 0  # weight: highest count the server reported; ORDERS: its latest count
    seen: bool = False  # ORDERS: a server count arrived in this window
    answered: int = 0  # ORDERS: creates of this window answered so far
    answered_at_server: int = 0  # ORDERS: `answered` when the request that brought `server` left

    @property
    def used(self) -> int:
        if not self.orders:
            return max(self.local, self.server)
        if not self.seen:
            return self.local
        # Creates answered before that request left are in the server's count; the others may not be yet.
        return self.server + self.local - self.answered_at_server

    def roll(self, start_ms: int) -> None:
        if self.start_ms != start_ms:
            self.start_ms, self.local, self.server, self.seen = start_ms, 0, 0, False
            self.answered = self.answered_at_server = 0


class RateBudget:
    """Request-weight and order-count budget, fed by response headers and Retry-After.

    Args:
        limits: the limits to enforce (`RateBudget.limits_from_exchange_info` parses exchangeInfo's).
        margin: fraction of every limit kept free for other processes and for counting lag (0.1 = 10 %).
        weights: per-endpoint weights; defaults to `ENDPOINT_WEIGHTS`.
    """

    def __init__(
        self,
        limits: Sequence[RateLimit] = DEFAULT_LIMITS,
        *,
        margin: float = 0.1,  # float-ok: a fraction of a request count, not money
        weights: Mapping[EndpointKind, int] | None = None,
    ) -> None:
        if not 0 <= margin < 1:
            raise ValueError(f"margin must be in [0, 1), got {margin}")
        self._limits = tuple(limits)
        self._margin = margin
        self._weights = dict(ENDPOINT_WEIGHTS if weights is None else weights)
        self._windows = [_Window(orders=limit.kind is LimitKind.ORDERS) for limit in self._limits]
        self._blocked_until_ms = 0
        self._blocked_reason = ""
        self._orders_halted_until_ms = 0  # 418: new orders halted until the ban ends
        self._creates_held_until_ms = 0  # 429 -1015: creates held until Retry-After
        # Per-request work is on every order's path: what can be known up front is computed once.
        self._allowed = tuple(self.effective_limit(limit) for limit in self._limits)
        self._header_windows: dict[str, tuple[int, ...]] = {}
        """Response header name → indexes of the limits it counts (empty: not a counter; learnt per name)."""

    @staticmethod
    def limits_from_exchange_info(rate_limits: Iterable[Mapping[str, object]]) -> tuple[RateLimit, ...]:
        """Parse exchangeInfo's `rateLimits` list; unknown entries are skipped with a warning."""
        out = []
        for entry in rate_limits:
            try:
                kind = LimitKind(str(entry["rateLimitType"]))
                interval_ms = INTERVAL_MS[str(entry["interval"])] * int(str(entry["intervalNum"]))
                limit = int(str(entry["limit"]))
            except (KeyError, ValueError) as exc:
                logger.warning("skipping unreadable rate limit {entry}: {exc}", entry=entry, exc=exc)
                continue
            out.append(RateLimit(kind, interval_ms, limit))
        return tuple(out)

    @property
    def limits(self) -> tuple[RateLimit, ...]:
        """The limits in force."""
        return self._limits

    def effective_limit(self, limit: RateLimit) -> int:
        """What the budget lets itself use of `limit`: limit − margin, rounded down."""
        return math.floor(limit.limit * (1 - self._margin))

    def used(self, limit: RateLimit, now_ms: int) -> int:
        """Units counted in `limit`'s current window."""
        window = self._windows[self._limits.index(limit)]
        return window.used if window.start_ms == limit.window_start(now_ms) else 0

    def _cost(self, limit: RateLimit, endpoint: EndpointKind, weight: int) -> int:
        if limit.kind is LimitKind.REQUEST_WEIGHT:
            return weight
        return int(endpoint is EndpointKind.CREATE_ORDER) if limit.kind is LimitKind.ORDERS else 1  # or RAW_REQUESTS

    def reserve(self, endpoint: EndpointKind, now_ms: int, *, weight: int | None = None) -> Admit | Wait:
        """Admit one request of `endpoint` at `now_ms`, charging every window, or say how long to wait.

        Args:
            endpoint: what is about to be sent.
            now_ms: the current time (epoch ms, from the injected clock).
            weight: overrides the endpoint's weight (e.g. depth with a larger limit).
        """
        if now_ms < self._blocked_until_ms:
            return Wait(self._blocked_until_ms, self._blocked_reason)
        held: Wait | None = None  # an order-count hold: reported only if nothing else is in the way
        if endpoint is EndpointKind.CREATE_ORDER:
            if now_ms < self._orders_halted_until_ms:
                held = Wait(self._orders_halted_until_ms, "new orders halted until the IP ban ends (418)", True)
            elif now_ms < self._creates_held_until_ms:
                held = Wait(self._creates_held_until_ms, "creates held after a 429 on an order (-1015)", True)
        cost_weight = self._weights[endpoint] if weight is None else weight
        costs = [self._cost(limit, endpoint, cost_weight) for limit in self._limits]
        starts = [now_ms - now_ms % limit.interval_ms for limit in self._limits]  # `window_start`, inlined
        for limit, window, cost, start, allowed in zip(
            self._limits, self._windows, costs, starts, self._allowed, strict=True
        ):
            if cost == 0:
                continue
            used = window.used if window.start_ms == start else 0
            if used + cost > allowed:
                until, reason = start + limit.interval_ms, f"{limit.label} window full ({used}+{cost} > {allowed})"
                if not window.orders:
                    return Wait(until, reason)
                if held is None or until > held.until_ms:
                    held = Wait(until, reason, True)
            elif window.orders and _just_turned(window, limit, start, now_ms) and window.used + cost > allowed:
                # Just past the boundary, the previous window full: a create arriving a few ms early is counted
                # there (-1015 at every boundary of a saturated order rate).
                until, reason = start + ORDER_WINDOW_GUARD_MS, f"{limit.label} window just turned; the last one full"
                if held is None or until > held.until_ms:
                    held = Wait(until, reason, True)
        if held is not None:
            return held
        for window, cost, start in zip(self._windows, costs, starts, strict=True):
            window.roll(start)
            # Weight: charged on top of whichever count is higher, so local and server counts never overlap
            # short. ORDERS: `used` adds the creates the server has not counted yet.
            window.local = window.local + cost if window.orders else window.used + cost
        return Admit(endpoint, cost_weight, now_ms)

    def sent(self, admit: Admit, now_ms: int) -> Admit | Wait:
        """May the request of `admit`, held since (a create or a cancel at its write-ahead gate), leave now?

        Not while a block began meanwhile: a 429/418 Retry-After (everything), a ban or a -1015 hold (creates).
        The server counts a create in the order-count window it arrives in: one leaving in a later window than
        it was admitted in needs room there, and is charged there (a database stall let creates pile up at
        their gates, admitted window after window, then leave together). Returns the admit to `release`.
        """
        if now_ms < self._blocked_until_ms:
            return Wait(self._blocked_until_ms, self._blocked_reason)
        if admit.endpoint is not EndpointKind.CREATE_ORDER:
            return admit
        if now_ms < self._orders_halted_until_ms:
            return Wait(self._orders_halted_until_ms, "new orders halted until the IP ban ends (418)", True)
        if now_ms < self._creates_held_until_ms:
            return Wait(self._creates_held_until_ms, "creates held after a 429 on an order (-1015)", True)
        moved = []
        for limit, window, allowed in zip(self._limits, self._windows, self._allowed, strict=True):
            start = limit.window_start(now_ms)
            if not window.orders or start == limit.window_start(admit.admitted_ms) or start < window.start_ms:
                continue
            used = window.used if window.start_ms == start else 0
            if used + 1 > allowed:
                return Wait(start + limit.interval_ms, f"{limit.label} window full ({used}+1 > {allowed})", True)
            moved.append((window, start))
        for window, start in moved:
            window.roll(start)
            window.local += 1
        return replace(admit, orders_ms=now_ms) if moved else admit

    def release(self, admit: Admit, *, success: bool) -> None:
        """Settle an admitted request once answered (or known unsent).

        A successful order POST/DELETE costs no weight, so it is refunded. An answered create is counted
        so that a later order-count header, from a request sent after this answer, is known to include it.
        """
        if admit.endpoint is EndpointKind.CREATE_ORDER:
            counted_ms = admit.admitted_ms if admit.orders_ms is None else admit.orders_ms
            for limit, window in self._pairs():
                if window.orders and window.start_ms == limit.window_start(counted_ms):
                    window.answered += 1
        if not (success and admit.endpoint.is_order):
            return
        for limit, window in self._pairs():
            if limit.kind is LimitKind.REQUEST_WEIGHT and window.start_ms == limit.window_start(admit.admitted_ms):
                window.local = max(0, window.local - admit.weight)

    def order_mark(self, now_ms: int, *, create: bool = False) -> tuple[int, ...]:
        """Creates a count sent back will include (those answered by `now_ms`, the request itself if a `create`)."""
        return tuple(
            int(create) + (w.answered if w.start_ms == lim.window_start(now_ms) else 0) for lim, w in self._pairs()
        )

    def _pairs(self) -> Iterable[tuple[RateLimit, _Window]]:
        return zip(self._limits, self._windows, strict=True)

    def observe(
        self, headers: Mapping[str, str], now_ms: int, *, sent_ms: int | None = None, mark: Sequence[int] | None = None
    ) -> None:
        """Take the server's counts from a response's headers (case-insensitive).

        A count is applied only to the window the request was sent in (`sent_ms`, default `now_ms`), so a
        response that straddles a boundary cannot carry the old window's count into the new one. A weight
        count only raises the window's; an order count replaces it (fills lower it), plus the creates it may
        not include: all of the window's but those in `mark` (`order_mark` as the request left).
        """
        when = now_ms if sent_ms is None else sent_ms
        if mark is not None and len(mark) != len(self._limits):
            mark = None  # taken before the limits changed
        for name, value in headers.items():
            indexes = self._header_windows.get(name)
            if indexes is None:
                indexes = self._limits_counted_by(name)
            if not indexes:
                continue
            try:
                count = int(value)
            except ValueError:
                continue
            for i in indexes:
                limit, window = self._limits[i], self._windows[i]
                start = limit.window_start(when)
                if start != limit.window_start(now_ms):
                    continue
                window.roll(start)
                if window.orders:
                    window.server, window.seen = count, True
                    window.answered_at_server = 0 if mark is None else min(mark[i], window.local)
                else:
                    window.server = max(window.server, count)

    def _limits_counted_by(self, name: str) -> tuple[int, ...]:
        """The limits a response header counts (by kind and interval), remembered per header name."""
        match = _HEADER_RE.match(name.lower())
        indexes: tuple[int, ...] = ()
        if match is not None:
            kind = LimitKind.REQUEST_WEIGHT if match.group(1) == "used-weight" else LimitKind.ORDERS
            interval_ms = int(match.group(2)) * INTERVAL_MS[_HEADER_LETTER[match.group(3).upper()]]
            indexes = tuple(
                i for i, limit in enumerate(self._limits) if limit.kind is kind and limit.interval_ms == interval_ms
            )
        if len(self._header_windows) < _MAX_HEADER_NAMES:  # a bound, should a server vary its header names
            self._header_windows[name] = indexes
        return indexes

    def on_throttled(
        self,
        *,
        http_status: int,
        retry_after_s: float | None,  # float-ok: seconds
        now_ms: int,
        banned_until_ms: int | None = None,
        orders_only: bool = False,
        window_ms: int | None = None,
        sent_ms: int | None = None,
    ) -> None:
        """Record a 429 or 418: nothing is admitted until the later of all Retry-Afters seen.

        Without a Retry-After header a 429 waits for the end of the current minute and a 418 for two
        minutes (Binance's shortest ban); a 418 also halts new orders until the ban ends. `orders_only`
        (a 429 -1015, too many new orders) holds only creates, so that live orders can still be cancelled
        and looked up. Binance sends a -1015 without Retry-After: `window_ms`, the window its message names,
        holds creates until that window ends (the next 10 s boundary; 00:00 UTC for a daily breach) — the window
        the create left in (`sent_ms`), as the server counted it, and a guard past its end.
        """
        if retry_after_s is not None:
            until = now_ms + math.ceil(retry_after_s * 1000)
        elif banned_until_ms is not None:
            until = banned_until_ms
        elif window_ms:
            # The windows reset on the server clock's boundaries. The create was counted in the window it arrived
            # in, not the one its answer was read in: a daily breach answered just after 00:00 UTC (or sent then,
            # the server's clock a few ms behind our estimate of it) holds for a moment, not another whole day.
            ref = (now_ms if sent_ms is None else sent_ms) - ORDER_WINDOW_GUARD_MS
            if window_ms >= _LONG_ORDER_WINDOW_MS and ref % window_ms < _LONG_WINDOW_SLACK_MS:
                # Breaching a day's count in the first minute of the day is impossible (the 10 s window caps a
                # minute at a few hundred): the server counted it in the old day, its clock behind our estimate by
                # more than the guard. Holding to the next boundary would refuse every create for 24 h.
                ref -= _LONG_WINDOW_SLACK_MS
            until = max(ref - ref % window_ms + window_ms, now_ms) + ORDER_WINDOW_GUARD_MS
        elif http_status == 418:
            until = now_ms + 120 * _SECOND
        else:
            until = now_ms - now_ms % (60 * _SECOND) + 60 * _SECOND
        if banned_until_ms is not None:
            until = max(until, banned_until_ms)
        if orders_only and http_status != 418:
            if until > self._creates_held_until_ms:
                self._creates_held_until_ms = until
                logger.error("creates held until {until} after a 429 on an order (-1015)", until=until)
            return
        if until > self._blocked_until_ms:
            self._blocked_until_ms = until
            self._blocked_reason = f"HTTP {http_status}: Retry-After until {until}"
        if http_status == 418:
            self._orders_halted_until_ms = max(self._orders_halted_until_ms, until)
            logger.error("IP banned (418): all requests wait, new orders halted until {until}", until=until)

    def blocked_until_ms(self) -> int:
        """The end of the current Retry-After block (0 if never blocked)."""
        return self._blocked_until_ms

    def creates_held_until_ms(self) -> int:
        """The end of the current order-count (429 -1015) hold on creates (0 if never held)."""
        return self._creates_held_until_ms

    def new_orders_halted(self, now_ms: int) -> bool:
        """True while a 418 ban is in force."""
        return now_ms < self._orders_halted_until_ms


def _just_turned(window: _Window, limit: RateLimit, start: int, now_ms: int) -> bool:
    """`now_ms` is within `ORDER_WINDOW_GUARD_MS` of the window starting at `start`, and nothing is counted in it yet
    (the last window counted is the one before)."""
    return now_ms - start < ORDER_WINDOW_GUARD_MS and window.start_ms == start - limit.interval_ms
