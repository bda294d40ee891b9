"""Prometheus metrics of the daemon, served by the control API at ``GET /metrics`` (bearer token required).

A registry of its own (not the process-global one), so two engines in one process — tests — never share
counters. Three sources:

- the control API: request outcomes, API submit→answer latency, auth failures;
- the engine's event stream: fills (and fill → applied latency), fallbacks, cancels, errors, external orders,
  engine submit → exchange ack latency;
- the engine's health at scrape time (`Engine.health()`): halted, paused, gateway queue and rate budget,
  stream states and reconnects, the persistence backlog. Read by `HealthCollector` from the latest snapshot;
  a field the engine does not report (yet) is simply left out rather than reported as zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from engine.api import EngineEvent, EventKind, PlaceOutcome, Refusal

__all__ = ["CONTENT_TYPE", "HealthCollector", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_FILL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def _number(value: object) -> float | None:
    """A JSON-ish number as a float for a gauge (bool → 0/1); None for anything else."""
    if isinstance(value, bool):
        return float(value)  # float-ok: a gauge value
    if isinstance(value, int | float):
        return float(value)  # float-ok: a gauge value
    if isinstance(value, str):
        try:
            return float(value)  # float-ok: decimal strings (wallet value) shown on dashboards only
        except ValueError:
            return None
    return None


def _rate_limits(gateway: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(limit label, figures) for each rate limit the gateway reports, in whichever shape it uses:
    ``{"rate_limits": {"REQUEST_WEIGHT/60s": {"used": 12, "limit": 6000, "ceiling": 5400}}}`` or a list of
    ``{"label"|"name": ..., "used": ..., "limit": ...}``; any key whose name mentions a rate budget counts."""
    for key, value in gateway.items():
        if not any(word in key for word in ("rate", "budget", "limits")):
            continue
        items: list[tuple[str, Any]] = []
        if isinstance(value, Mapping):
            items = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [
                (str(v.get("label") or v.get("name") or i), v) for i, v in enumerate(value) if isinstance(v, Mapping)
            ]
        for label, entry in items:
            if isinstance(entry, Mapping):
                yield label, entry
            elif _number(entry) is not None:
                yield label, {"used": entry}


class HealthCollector(Collector):
    """Gauges and counters read from the latest `Engine.health()` snapshot (set by `Metrics.render`)."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self.health: Mapping[str, Any] = {}
        self._now = wall_clock

    def describe(self) -> list[Metric]:
        # Families only (no samples): the registry learns the names without reading a snapshot.
        return list(self._families({}))

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self.health)

    def _families(self, health: Mapping[str, Any]) -> Iterator[Metric]:
        gateway: Mapping[str, Any] = health.get("gateway") or {}
        database: Mapping[str, Any] = health.get("database") or {}
        streams: Mapping[str, Any] = health.get("streams") or {}
        yield from self._gateway(gateway)
        yield from self._streams(streams)
        backlog = GaugeMetricFamily(
            "bexec_persistence_backlog", "Records waiting in the outage spool or memory (not yet in the database)"
        )
        db_ok = GaugeMetricFamily("bexec_database_ok", "1 while the database takes writes directly (not spooling)")
        accepting = GaugeMetricFamily("bexec_database_accepting_orders", "0 when the spool is full (intake halted)")
        if (spooled := _number(database.get("spooled"))) is not None:
            backlog.add_metric([], spooled)
        if "health" in database:
            db_ok.add_metric([], float(str(database["health"]) == "ok"))  # float-ok: a gauge
        if (value := _number(database.get("accepting_orders"))) is not None:
            accepting.add_metric([], value)
        yield from (backlog, db_ok, accepting)
        pairs = GaugeMetricFamily("bexec_pair_actor_up", "1 while the pair's actor is alive", labels=["pair"])
        for pair, alive in (health.get("pairs") or {}).items():
            pairs.add_metric([str(pair)], float(bool(alive)))  # float-ok: a gauge
        restarts = CounterMetricFamily("bexec_pair_restarts", "Pair actor restarts since start (restart budget)")
        if (value := _number(health.get("restarts"))) is not None:
            restarts.add_metric([], value)
        wallet = GaugeMetricFamily("bexec_wallet_btc", "Account value in BTC at the last valuation (dashboards only)")
        if (value := _number(health.get("wallet_btc"))) is not None:
            wallet.add_metric([], value)
        yield from (pairs, restarts, wallet)

    def _gateway(self, gateway: Mapping[str, Any]) -> Iterator[Metric]:
        queued = GaugeMetricFamily("bexec_gateway_queue_depth", "Requests waiting for the rate budget")
        in_flight = GaugeMetricFamily("bexec_gateway_in_flight", "Requests sent and not yet answered")
        requests = CounterMetricFamily("bexec_gateway_requests", "Exchange requests by result", labels=["result"])
        halted = GaugeMetricFamily("bexec_gateway_orders_halted", "1 while the rate budget holds new orders back")
        blocked = GaugeMetricFamily(
            "bexec_gateway_blocked_seconds", "Seconds until a 429/418 Retry-After block ends (0: not blocked)"
        )
        offset = GaugeMetricFamily("bexec_gateway_clock_offset_seconds", "Exchange clock minus local clock")
        used = GaugeMetricFamily("bexec_rate_budget_used", "Used in the current window, per limit", labels=["limit"])
        limit = GaugeMetricFamily("bexec_rate_budget_limit", "The limit enforced, per limit", labels=["limit"])
        ceiling = GaugeMetricFamily(
            "bexec_rate_budget_ceiling", "Where the engine stops admitting (below the limit)", labels=["limit"]
        )
        ratio = GaugeMetricFamily("bexec_rate_budget_used_ratio", "used / limit, per limit", labels=["limit"])
        for family, key in ((queued, "queued"), (in_flight, "in_flight"), (halted, "orders_halted")):
            if (value := _number(gateway.get(key))) is not None:
                family.add_metric([], value)
        for result in ("sent", "failed"):
            if (value := _number(gateway.get(result))) is not None:
                requests.add_metric([result], value)
        if (left_ms := _number(gateway.get("blocked_for_ms"))) is not None:
            blocked.add_metric([], left_ms / 1000)  # what is left: the engine's clock may be off the wall clock
        elif (until_ms := _number(gateway.get("blocked_until_ms"))) is not None:
            blocked.add_metric([], max(0.0, until_ms / 1000 - self._now()))
        if (offset_ms := _number(gateway.get("clock_offset_ms"))) is not None:
            offset.add_metric([], offset_ms / 1000)
        for label, figures in _rate_limits(gateway):
            used_value, limit_value = _number(figures.get("used")), _number(figures.get("limit"))
            for family, value in ((used, used_value), (limit, limit_value), (ceiling, _number(figures.get("ceiling")))):
                if value is not None:
                    family.add_metric([label], value)
            if used_value is not None and limit_value:
                ratio.add_metric([label], used_value / limit_value)
        yield from (queued, in_flight, requests, halted, blocked, offset, used, limit, ceiling, ratio)

    def _streams(self, streams: Mapping[str, Any]) -> Iterator[Metric]:
        up = GaugeMetricFamily("bexec_stream_up", "1 while the stream is connected", labels=["stream"])
        reconnects = CounterMetricFamily("bexec_stream_reconnects", "Stream reconnections", labels=["stream"])
        for role, stream in streams.items():
            if not isinstance(stream, Mapping):
                continue
            up.add_metric([str(role)], float(str(stream.get("state")) == "connected"))  # float-ok: a gauge
            if (value := _number(stream.get("reconnects"))) is not None:
                reconnects.add_metric([str(role)], value)
        yield from (up, reconnects)


class Metrics:
    """The daemon's metrics."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._now = wall_clock
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
        self.ack_latency = Histogram(
            "bexec_order_ack_seconds",
            "From the engine creating an order (write-ahead) to the exchange's ack, by role (primary, fallback)",
            ["role"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fill_latency = Histogram(
            "bexec_fill_applied_seconds",
            "From a fill's exchange time to its event reaching the control API (stream or reconciliation)",
            buckets=_FILL_BUCKETS,
            registry=r,
        )
        self.events = Counter("bexec_order_events", "Order events by kind", ["kind", "pair"], registry=r)
        self.filled = Counter("bexec_filled_base", "Base-asset quantity filled", ["pair", "side"], registry=r)
        self.open_orders = Gauge("bexec_open_orders", "Open orders at scrape time", registry=r)
        self.halted = Gauge("bexec_halted", "1 while the engine is in its safe halted state", registry=r)
        self.paused = Gauge("bexec_paused", "1 while intake is paused (kill switch)", registry=r)
        self.watchers = Gauge("bexec_event_watchers", "Connected event-stream watchers", registry=r)
        self.health = HealthCollector(wall_clock)
        r.register(self.health)

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
            # Clock skew can make this slightly negative: clamp rather than drop the observation.
            self.fill_latency.observe(max(0.0, self._now() - event.fill.time.timestamp()))
        order = event.order
        if event.kind is EventKind.ACCEPTED and order is not None:  # a primary's or a fallback's ack
            seconds = (event.time - order.created_at).total_seconds()
            self.ack_latency.labels(role=order.role.value).observe(max(0.0, seconds))

    def render(
        self, *, open_orders: int, halted: bool, paused: bool, watchers: int, health: Mapping[str, Any] | None = None
    ) -> bytes:
        """The exposition text, with the state gauges set to the given values and `health` as the snapshot."""
        self.open_orders.set(open_orders)
        self.halted.set(int(halted))
        self.paused.set(int(paused))
        self.watchers.set(watchers)
        self.health.health = dict(health or {})
        return generate_latest(self.registry)
