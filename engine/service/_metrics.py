"""Prometheus metrics of the daemon, served by the control API at ``GET /metrics`` (bearer token required).

A registry of its own (not the process-global one), so two engines in one process — tests — never share
counters. Counters are fed from two places: the control API (request outcomes, submit→ack latency, auth
failures) and the engine's event stream (fills, fallbacks, cancels, errors, external orders). Gauges that
describe the engine's state (open orders, halted, paused) are read at scrape time.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from engine.api import EngineEvent, EventKind, PlaceOutcome, Refusal

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The daemon's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.orders = Counter(
            "bexec_orders",
            "Order requests by outcome (accepted, duplicate, or the refusal reason)",
            ["outcome"],
            registry=r,
        )
        self.invalid = Counter("bexec_invalid_requests", "Requests refused by validation before the engine", registry=r)
        self.auth_failures = Counter("bexec_auth_failures", "Control API requests with a bad or no token", registry=r)
        self.submit_latency = Histogram(
            "bexec_submit_ack_seconds",
            "From the control API receiving an order to the engine's answer (exchange ack or refusal)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.events = Counter("bexec_order_events", "Order events by kind", ["kind", "pair"], registry=r)
        self.filled = Counter("bexec_filled_base", "Base-asset quantity filled", ["pair", "side"], registry=r)
        self.open_orders = Gauge("bexec_open_orders", "Open orders at scrape time", registry=r)
        self.halted = Gauge("bexec_halted", "1 while the engine is in its safe halted state", registry=r)
        self.paused = Gauge("bexec_paused", "1 while intake is paused (kill switch)", registry=r)
        self.watchers = Gauge("bexec_event_watchers", "Connected event-stream watchers", registry=r)

    def on_outcome(self, outcome: PlaceOutcome, seconds: float) -> None:
        """Count one answered order request."""
        if isinstance(outcome, Refusal):
            label = outcome.reason.value
        else:
            label = "duplicate" if outcome.duplicate else "accepted"
        self.orders.labels(outcome=label).inc()
        self.submit_latency.observe(seconds)

    def on_event(self, event: EngineEvent) -> None:
        """Count one engine event (called from an engine thread: counters are thread-safe and cheap)."""
        self.events.labels(kind=event.kind.value, pair=event.pair).inc()
        if event.kind is EventKind.FILL and event.fill is not None:
            # Counters take floats: metrics are for dashboards, the ledger stays Decimal in the database.
            quantity = float(event.fill.quantity)  # float-ok: a dashboard counter
            self.filled.labels(pair=event.pair, side=event.fill.side.value).inc(quantity)

    def render(self, *, open_orders: int, halted: bool, paused: bool, watchers: int) -> bytes:
        """The exposition text, with the state gauges set to the given values."""
        self.open_orders.set(open_orders)
        self.halted.set(int(halted))
        self.paused.set(int(paused))
        self.watchers.set(watchers)
        return generate_latest(self.registry)
