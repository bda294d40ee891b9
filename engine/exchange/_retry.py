"""Retry policy for idempotent calls, and the clock-offset estimator. Pure: randomness and time injected.

Only reads and cancels are retried. A create is never retried by this policy: its unknown outcome goes to
`UnknownOutcomeResolver`, which looks the client order id up instead (resending blindly duplicates orders).
"""

from __future__ import annotations

import random
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

from engine.exchange._errors import ClockSkew, ExchangeError, OutcomeUnknown, RetryLater

__all__ = ["IDEMPOTENT_OPERATIONS", "BackoffPolicy", "ClockOffsetEstimator", "is_idempotent", "should_retry"]

IDEMPOTENT_OPERATIONS: Final = frozenset(
    {
        "cancel_order",  # a repeated cancel of a gone order answers -2011, never a second effect
        "fetch_order",
        "fetch_open_orders",
        "fetch_my_trades",
        "fetch_balance",
        "fetch_time",
        "fetch_ticker",
        "fetch_order_book",
        "fetch_book_ticker",
        "fetch_ticker_price",
        "fetch_exchange_info",
        "load_markets",
        "fetch_api_restrictions",
    }
)
"""Operations safe to send twice (plus any other read named `fetch_…`). `create_order` is absent."""


def is_idempotent(operation: str) -> bool:
    """True for operations that may be sent twice: the listed ones and every read named `fetch_…`."""
    return operation in IDEMPOTENT_OPERATIONS or operation.startswith("fetch_")


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Exponential backoff with jitter ("full" or "decorrelated", as in the AWS architecture blog).

    Attributes:
        base_s: first delay scale.
        cap_s: no delay exceeds this (except a longer Retry-After from the exchange).
        max_attempts: attempts in total, the first included; `should_retry` says None after the last.
        jitter: "full" draws from [base·2^n / 2, base·2^n] (equal jitter: never next to nothing); "decorrelated"
            from [base, 3·previous].
    """

    base_s: float = 0.2  # float-ok: seconds
    cap_s: float = 10.0  # float-ok: seconds
    max_attempts: int = 5
    jitter: Literal["full", "decorrelated"] = "full"

    def delay(self, attempt: int, rng: random.Random, previous_s: float | None = None) -> float:
        """The delay before retry number `attempt` (1 = first retry)."""
        if self.jitter == "decorrelated":
            prev = self.base_s if previous_s is None else max(previous_s, self.base_s)
            return min(self.cap_s, rng.uniform(self.base_s, prev * 3))
        ceiling = min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1))
        # Half fixed, half drawn ("equal jitter"): from 0, a draw of 10 ms put four retries of a failing cancel
        # within a second of each other, per order, in an outage where hundreds of orders fail together.
        return rng.uniform(ceiling / 2, ceiling)


def should_retry(
    operation: str,
    error: ExchangeError,
    attempt: int,
    *,
    rng: random.Random,
    policy: BackoffPolicy | None = None,
    previous_delay_s: float | None = None,  # float-ok: seconds
) -> float | None:
    """Seconds to wait before retrying `operation` after `error`, or None to stop.

    Args:
        operation: the operation name (see `IDEMPOTENT_OPERATIONS`); a create is never retried.
        error: the mapped failure of attempt number `attempt`.
        attempt: 1 for the first failure.
        rng: injected randomness (seeded in tests).
        policy: backoff parameters; the default policy if None.
        previous_delay_s: the last delay, for decorrelated jitter.

    Only outcome-unknown and retry-later errors are retried (never a rejection or a stop-trading error);
    the delay is at least the exchange's Retry-After. A clock-skew error is retried once the caller has
    re-synced (the delay is the backoff; the caller must resync first).
    """
    policy = policy or BackoffPolicy()
    if not is_idempotent(operation) or attempt >= policy.max_attempts:
        return None
    if not isinstance(error, OutcomeUnknown | RetryLater):
        return None
    if isinstance(error, ClockSkew) and attempt > 1:
        return None  # a second skew right after a resync is not going to heal by waiting
    delay = policy.delay(attempt, rng, previous_delay_s)
    if isinstance(error, RetryLater) and error.retry_after_s is not None:
        delay = max(delay, error.retry_after_s)
    return delay


_STEP_MS = 500
"""A sample this much further from the median than its round trip can explain is a clock step, not noise."""


class ClockOffsetEstimator:
    """Server-minus-local clock offset from /api/v3/time round trips (median of recent samples).

    Each sample assumes the server read its clock half-way through the round trip; the median of the
    last `window` samples ignores the odd slow one. After -1021 the samples are dropped and a resync is
    needed, because the clock moved (suspend, NTP step) and old samples describe the old clock.
    """

    def __init__(self, window: int = 9, max_rtt_ms: int = 5_000) -> None:
        if window < 1:
            raise ValueError("window must be ≥ 1")
        self._samples: deque[tuple[int, int]] = deque(maxlen=window)  # (offset, rtt)
        self._max_rtt_ms = max_rtt_ms
        self._resync = True
        self._before = 0  # the offset before `mark_skew`: still the best guess until a new sample comes
        self._step: tuple[int, int] | None = None  # a far sample, kept aside until a second one confirms it

    def add_sample(self, sent_ms: int, server_ms: int, received_ms: int) -> bool:
        """Record one round trip; returns False (and ignores it) if it is implausible or too slow."""
        rtt = received_ms - sent_ms
        if rtt < 0 or rtt > self._max_rtt_ms:
            return False
        offset = server_ms - (sent_ms + received_ms) // 2
        if self._samples and abs(offset - self.offset_ms) > max(_STEP_MS, rtt):
            # Further off than the round trip can explain: an outlier, or a clock that stepped (NTP, a suspended
            # host). A second sample agreeing with it says step: the old samples describe the old clock, and their
            # median would hold the stale offset for `window` more samples.
            step, self._step = self._step, (offset, rtt)
            if step is None or abs(offset - step[0]) > max(_STEP_MS, rtt):
                return True
            self._samples.clear()
            self._samples.append(step)
        self._step = None
        self._samples.append((offset, rtt))
        self._resync = False
        return True

    @property
    def offset_ms(self) -> int:
        """Median server − local offset (0 before any sample; after `mark_skew`, the one before it until a
        new sample arrives: a re-sync whose round trip is too slow must not reset a host clock ahead of the
        server's to no correction at all, which fails every signed request with -1021)."""
        if not self._samples:
            return self._before
        return int(statistics.median_low(offset for offset, _ in self._samples))

    @property
    def needs_resync(self) -> bool:
        """True before the first sample and after `mark_skew` until a new sample arrives."""
        return self._resync

    def mark_skew(self) -> None:
        """The exchange answered -1021: forget the samples and ask for a resync."""
        self._before = self.offset_ms
        self._samples.clear()
        self._resync = True

    def server_time_ms(self, local_ms: int) -> int:
        """The timestamp to sign a request made at local time `local_ms` with."""
        return local_ms + self.offset_ms

    def within_recv_window(self, recv_window_ms: int) -> bool:
        """True when |offset| plus half the worst recent round trip fits in `recv_window_ms`."""
        if not self._samples:
            return False
        worst_half_rtt = max(rtt for _, rtt in self._samples) // 2
        return abs(self.offset_ms) + worst_half_rtt < recv_window_ms
