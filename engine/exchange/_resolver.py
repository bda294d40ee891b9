"""Resolving a create whose outcome is unknown (timeout, 5xx, -1006/-1007, dropped connection).

The create is never resent blindly. Instead the order is looked up by its client order id:

```
            poll(now) due            lookup says found / ack / stream report
 PENDING ───────────────► LookUp ─────────────────────────────────────────► FOUND
   ▲  │                      │ not found, before the grace period ends
   │  │                      └──────────► PENDING (REST lags the engine by 10–20 s: proves nothing)
   │  │ not found `confirmations` times after the grace period
   │  └─────────────────────────────────────────────────────────────────────► NOT_CREATED
   │    lookups keep failing past `max_attempts`                              (resend, SAME client id)
   └───────────────────────────────────────────────────────────────────────► GAVE_UP (reconcile, alert)
```

GAVE_UP is not final: reconciliation keeps looking the order up, and a later sighting makes it FOUND, a later
"not found" past the grace period (`confirmations` times) NOT_CREATED.

A create answered "duplicate order" (-2010: its client order id is in use) is resolved with `exists=True`: the
exchange has said the order exists, so "not found" never concludes NOT_CREATED (a re-send would be a duplicate
once it filled, and a live order would go untracked). Past the grace period, `confirmations` "not found"
answers make it GAVE_UP instead (alert; reconciliation keeps looking until it is seen).

Field failures this prevents: Nautilus #4215 (a lookup scheduled before the ack fired after it and caused
a resend, rejected as a duplicate id) — here anything that shows the order exists resolves FOUND and every
later lookup result or poll is ignored; Nautilus #4411 (a "not found" marked a live order rejected) — here
"not found" inside the grace period only schedules the next lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from loguru import logger

from engine.domain import ClientOrderId
from engine.exchange._errors import ExchangeError

__all__ = ["LookUp", "Resolution", "UnknownOutcomeResolver"]


class Resolution(StrEnum):
    """Where the resolution of one unknown create stands."""

    PENDING = "pending"
    """Still looking; no conclusion may be drawn."""
    FOUND = "found"
    """The order exists: apply what the ack, report or lookup said."""
    NOT_CREATED = "not_created"
    """Definitely not created: the caller may resend with the same client order id."""
    GAVE_UP = "gave_up"
    """Lookups kept failing: leave the order SUBMITTED for reconciliation and raise an alert."""


@dataclass(frozen=True, slots=True)
class LookUp:
    """Command: query the order by client order id now (GET /api/v3/order?origClientOrderId=…)."""

    client_order_id: ClientOrderId
    attempt: int


class UnknownOutcomeResolver:
    """State machine for one create with an unknown outcome; time is passed in.

    Args:
        client_order_id: the id the create was sent with.
        submitted_ms: when the create was sent.
        grace_ms: how long "not found" proves nothing (REST lags the matching engine).
        interval_ms: time between lookups.
        confirmations: "not found" answers needed after the grace period to conclude NOT_CREATED.
        max_failures: failed lookups (errors, not "not found") before GAVE_UP.
        first_lookup_ms: when to look first (default one interval after the submit; after a restart, now).
        exists: the exchange said the order exists (a duplicate client order id): never NOT_CREATED.
    """

    def __init__(
        self,
        client_order_id: ClientOrderId,
        submitted_ms: int,
        *,
        grace_ms: int = 60_000,
        interval_ms: int = 2_000,
        confirmations: int = 2,
        max_failures: int = 10,
        first_lookup_ms: int | None = None,
        exists: bool = False,
    ) -> None:
        if grace_ms < 0 or interval_ms <= 0 or confirmations < 1 or max_failures < 1:
            raise ValueError("grace_ms ≥ 0, interval_ms > 0, confirmations ≥ 1 and max_failures ≥ 1 required")
        self.client_order_id = client_order_id
        self._submitted_ms = submitted_ms
        self._grace_ms = grace_ms
        self._interval_ms = interval_ms
        self._confirmations = confirmations
        self._max_failures = max_failures
        self._state = Resolution.PENDING
        self._next_ms: int | None = submitted_ms + interval_ms if first_lookup_ms is None else first_lookup_ms
        self._in_flight = False
        self._attempts = 0
        self._failures = 0
        self._not_found_after_grace = 0
        self.exists = exists

    @property
    def state(self) -> Resolution:
        """The current resolution."""
        return self._state

    @property
    def next_lookup_ms(self) -> int | None:
        """When `poll` will next return a lookup (None while one is in flight or once resolved)."""
        if self._state is not Resolution.PENDING or self._in_flight:
            return None
        return self._next_ms

    @property
    def attempts(self) -> int:
        """Lookups issued so far."""
        return self._attempts

    def poll(self, now_ms: int) -> LookUp | None:
        """The lookup to send now, if one is due; at most one is in flight at a time."""
        if self._state is not Resolution.PENDING or self._in_flight:
            return None
        if self._next_ms is None or now_ms < self._next_ms:
            return None
        self._in_flight = True
        self._attempts += 1
        return LookUp(self.client_order_id, self._attempts)

    def on_order_seen(self, now_ms: int) -> Resolution:
        """An ack, a stream report or a successful lookup shows the order exists."""
        if self._state in (Resolution.PENDING, Resolution.GAVE_UP):
            # Seen after giving up too: the order exists after all (a report or a later reconciliation).
            self._state = Resolution.FOUND
            self._in_flight = False
            self._next_ms = None
        elif self._state is Resolution.NOT_CREATED:
            # Seen after we concluded "not created": the conclusion was wrong; the caller must not resend
            # (or, if it already did, its duplicate-id rejection is expected). Say so loudly.
            logger.error(
                "order {cid} seen at {now} after it was concluded not created",
                cid=self.client_order_id,
                now=now_ms,
            )
            self._state = Resolution.FOUND
        return self._state

    def on_lookup_not_found(self, now_ms: int) -> Resolution:
        """The lookup answered "order does not exist" (-2013)."""
        self._in_flight = False
        if self._state is not Resolution.PENDING and self._state is not Resolution.GAVE_UP:
            return self._state  # a stale answer from before the ack: changes nothing (#4215)
        # After GAVE_UP, reconciliation keeps looking the order up: "not found" past the grace period, as
        # many times as before, still proves it was never created.
        if now_ms < self._submitted_ms + self._grace_ms:
            self._next_ms = now_ms + self._interval_ms  # not yet visible, proves nothing (#4411)
            return self._state
        self._not_found_after_grace += 1
        if self.exists:
            # The exchange said the id is in use: REST lags; never "not created". Past the confirmations the
            # operator hears of it (GAVE_UP) and reconciliation goes on looking.
            if self._not_found_after_grace >= self._confirmations and self._state is Resolution.PENDING:
                self._state = Resolution.GAVE_UP
                self._next_ms = None
            elif self._state is Resolution.PENDING:
                self._next_ms = now_ms + self._interval_ms
            return self._state
        if self._not_found_after_grace >= self._confirmations:
            self._state = Resolution.NOT_CREATED
            self._next_ms = None
        else:
            self._next_ms = now_ms + self._interval_ms
        return self._state

    def on_lookup_failed(self, error: ExchangeError, now_ms: int) -> Resolution:
        """The lookup itself failed (timeout, 5xx, rate limit …); try again later, within bounds."""
        self._in_flight = False
        if self._state is not Resolution.PENDING:
            return self._state
        self._failures += 1
        if self._failures >= self._max_failures:
            logger.error(
                "giving up resolving {cid} after {n} failed lookups: {err}",
                cid=self.client_order_id,
                n=self._failures,
                err=error,
            )
            self._state = Resolution.GAVE_UP
            self._next_ms = None
            return self._state
        retry_after_s = getattr(error, "retry_after_s", None)
        wait_ms = self._interval_ms if retry_after_s is None else max(self._interval_ms, int(retry_after_s * 1000))
        self._next_ms = now_ms + wait_ms
        return self._state
