"""Fault specifications and their seeded / scripted schedule (pure: time is passed in)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["FaultKind", "FaultSchedule", "FaultSpec"]

FaultKind = Literal[
    "latency",  # REST / WS API: delay the answer by latency_ms
    "withhold",  # REST: process the request, then hold the response for hold_s (past the client's timeout)
    "http_error",  # REST: status/code/msg; execute=True processes the request first (order created)
    "rate_limit",  # REST: 429 -1003 with Retry-After
    "ban",  # REST: 418 -1003 with Retry-After
    "clock_skew",  # REST: the timestamp check sees server time + skew_ms (→ -1021 either way)
    # REST order POST: for lag_ms REST does not show the new order (GET order -2013, cancel by id -2011, left out of
    # openOrders, allOrders, cancel-all and myTrades); it rests, trades and streams its events all along. With
    # lag_lookups, the first lag_lookups REST requests naming the order (GET order, cancel by id, myTrades of its
    # orderId) do not show it either, and it is shown nowhere before: a lag in lookups, for clients on a manual clock
    # (with no time limit: a client that never names the order never sees it in a list)
    "visibility_lag",
    "events_first",  # REST: the request's user-stream events are sent (written to the socket) before the response
    "drop_events",  # user stream: the event is not sent
    "duplicate_events",  # user stream: the event is sent twice
    "reorder_events",  # user stream: the event is held back and sent after the next one
    "delay_events",  # user stream: the event (and the account's later ones, in order) is sent delay_ms late
    "reject_subscribe",  # WS API: userDataStream.subscribe.signature answers status/code/msg (429/418: data.retryAfter)
    "handshake",  # WebSocket upgrade refused with HTTP status (429/418: -1003 body, Retry-After retry_after)
    "ws_close",  # user stream: the connection is closed (close frame) when the event is due; event lost
    "ws_abort",  # user stream: the TCP connection is aborted when the event is due; event lost
    "ws_stall",  # user stream: the connection goes silent (no pongs, no frames) from this event on
]

REST_KINDS = frozenset(
    {"latency", "withhold", "http_error", "rate_limit", "ban", "clock_skew", "visibility_lag", "events_first"}
)
CONN_KINDS = frozenset({"ws_close", "ws_abort", "ws_stall"})
HANDSHAKE_KINDS = frozenset({"handshake"})
EVENT_KINDS = frozenset({"drop_events", "duplicate_events", "reorder_events", "delay_events"}) | CONN_KINDS


class FaultSpec(BaseModel):
    """One fault: what, where (``target`` glob) and when (next ``count`` matches, or a seeded probability).

    Targets: REST ``"<METHOD> <path>"`` (``"POST /api/v3/order"``, ``"* /api/v3/*"``); user stream
    ``"user:<account>"``; WS API subscribe ``"ws-api"``; a WebSocket handshake (``handshake``) ``"ws-api"``,
    ``"market"`` or ``"listen-key"`` (Binance.US's ``/ws/<listenKey>``). With neither ``count`` nor ``probability``
    the fault fires on every match until removed.

    ``handshake`` refuses the upgrade with HTTP ``status`` (set it: 429 or 418, say) and ``Retry-After:
    retry_after``; the refused attempt still counts against the connection budget. UBWA treats a 429 at the
    handshake as fatal for the stream and retries anything else every 0.1 s (binance-spot.md §6.5).

    Binance does not order an order's REST response and its user-stream events; by default the simulator writes the
    response first. ``events_first`` (on a REST target) writes the events the request caused to the user streams'
    sockets before the response; ``delay_events`` (on ``"user:<account>"``) sends them ``delay_ms`` late.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind
    target: str = "*"
    count: int | None = None
    probability: float | None = None  # float-ok: a chance, not money
    latency_ms: int = 0
    status: int = 503
    code: int = -1006
    msg: str = "An unknown error occurred while processing the request. Execution status unknown."
    execute: bool = True
    retry_after: int = 1
    skew_ms: int = 0
    lag_ms: int = 0
    lag_lookups: int = 0
    delay_ms: int = 0
    hold_s: float = 30.0  # float-ok: seconds


@dataclass
class _Entry:
    fault_id: int
    spec: FaultSpec
    remaining: int | None


@dataclass
class FaultSchedule:
    """Active faults in insertion order, a seeded RNG for probabilistic ones, and the fault log."""

    seed: int
    entries: list[_Entry] = field(default_factory=list)
    log: list[dict[str, object]] = field(default_factory=list)
    _next_id: int = 0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.seed}:faults")

    def add(self, spec: FaultSpec) -> int:
        """Activate ``spec``; returns its id."""
        self._next_id += 1
        self.entries.append(_Entry(self._next_id, spec, spec.count))
        return self._next_id

    def remove(self, fault_id: int) -> bool:
        """Deactivate one fault; False if it was not active."""
        before = len(self.entries)
        self.entries = [e for e in self.entries if e.fault_id != fault_id]
        return len(self.entries) != before

    def clear(self) -> None:
        """Deactivate every fault (the log is kept)."""
        self.entries.clear()

    def active(self) -> list[dict[str, object]]:
        """Active faults as ``{"id", "spec", "remaining"}``."""
        return [{"id": e.fault_id, "spec": e.spec.model_dump(), "remaining": e.remaining} for e in self.entries]

    def take(self, channel: str, kinds: frozenset[str], now: int, detail: str = "") -> list[FaultSpec]:
        """Faults of ``kinds`` that fire for ``channel`` now; counts are consumed and firings logged."""
        if not self.entries:
            return []
        fired: list[FaultSpec] = []
        for e in list(self.entries):
            spec = e.spec
            if spec.kind not in kinds or not fnmatchcase(channel, spec.target):
                continue
            if spec.probability is not None and self._rng.random() >= spec.probability:
                continue
            if e.remaining is not None:
                e.remaining -= 1
                if e.remaining <= 0:
                    self.entries.remove(e)
            fired.append(spec)
            self.log.append({"id": e.fault_id, "kind": spec.kind, "channel": channel, "time": now, "detail": detail})
        return fired

    def note(self, kind: str, channel: str, now: int, detail: str = "") -> None:
        """Log a fault triggered directly through the control API (close, abort, stall, …)."""
        self.log.append({"id": 0, "kind": kind, "channel": channel, "time": now, "detail": detail})
