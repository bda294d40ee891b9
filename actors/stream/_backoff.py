"""Reconnect pacing: exponential backoff with jitter, and a sliding-window connection budget (pure)."""

from __future__ import annotations

import random
from collections import deque

__all__ = ["Backoff", "ConnectionBudget"]

_MAX_FLOOR_JITTER_MS = 30_000
"""The most jitter added on top of a floor (spreads reconnects; a ban's end needs no more than that)."""


class Backoff:
    """Delays between consecutive reconnect attempts: 0 first, then ``min·2^(n-1)`` capped, with equal jitter.

    The first attempt after a healthy period is immediate (an ``eventStreamTerminated`` or ``serverShutdown``
    should not cost a second of blindness); each further failure doubles the delay up to the cap. Jitter keeps
    many engines behind one NAT from reconnecting in lockstep. ``reset()`` once a stream is proven healthy.
    """

    def __init__(self, min_ms: int, max_ms: int, rng: random.Random) -> None:
        if not 0 < min_ms <= max_ms:
            raise ValueError("need 0 < min_ms <= max_ms")
        self.min_ms = min_ms
        self.max_ms = max_ms
        self._rng = rng
        self.attempt = 0

    def next_delay_ms(self, floor_ms: int = 0) -> int:
        """The delay before the next attempt (and count the attempt); never under `floor_ms` if one is given.

        A delay raised to the floor gets up to a quarter of it (at most 30 s) on top as jitter (never less: the
        floor is what the exchange asked for, or the least a rate limit deserves).
        """
        n = self.attempt
        self.attempt += 1
        delay = 0
        if n > 0:
            # Bound the exponent so 2**n never grows without limit while the cap holds anyway.
            base = min(self.max_ms, self.min_ms * (1 << min(n - 1, 40)))
            delay = self._rng.randint(base // 2, base)
        if delay < floor_ms:
            # Capped: after a long ban (up to three days) a quarter on top would idle the stream for hours.
            delay = floor_ms + self._rng.randint(0, min(floor_ms // 4, _MAX_FLOOR_JITTER_MS))
        return delay

    def reset(self) -> None:
        """Back to an immediate first attempt."""
        self.attempt = 0


class ConnectionBudget:
    """At most ``limit`` connection attempts in any ``window_ms`` (Binance: 300 per 5 minutes per IP)."""

    def __init__(self, limit: int, window_ms: int) -> None:
        if limit < 1 or window_ms < 1:
            raise ValueError("limit and window_ms must be positive")
        self.limit = limit
        self.window_ms = window_ms
        self._attempts: deque[int] = deque()
        self.total = 0
        """Attempts counted since creation (ours and UBWA's)."""

    def _expire(self, now_ms: int) -> None:
        while self._attempts and self._attempts[0] <= now_ms - self.window_ms:
            self._attempts.popleft()

    def used(self, now_ms: int) -> int:
        """Attempts counted in the window ending at ``now_ms``."""
        self._expire(now_ms)
        return len(self._attempts)

    def wait_ms(self, now_ms: int) -> int:
        """How long until one more attempt fits (0 if it fits now)."""
        self._expire(now_ms)
        if len(self._attempts) < self.limit:
            return 0
        return self._attempts[len(self._attempts) - self.limit] + self.window_ms - now_ms

    def try_take(self, now_ms: int) -> bool:
        """Count an attempt we are about to make, if it fits; False (nothing counted) if it does not."""
        if self.wait_ms(now_ms) > 0:
            return False
        self._attempts.append(now_ms)
        self.total += 1
        return True

    def note(self, now_ms: int) -> None:
        """Count an attempt someone else already made (UBWA's own reconnect); may exceed the limit."""
        self._expire(now_ms)
        self._attempts.append(now_ms)
        self.total += 1
