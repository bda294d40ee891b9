"""Metrics from the engine's health at scrape time (tolerating missing or odd fields) and the latency histograms
fed by engine events, on a hand-driven clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from engine.api import EngineEvent, EventKind
from engine.domain import Fill, Order, OrderRole, OrderStatus, OrderType, Pair, Side
from engine.service._metrics import Metrics

T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)

HEALTH: dict[str, Any] = {
    "halted": False,
    "paused": False,
    "wallet_btc": "1.5",
    "streams": {"user": {"state": "connected", "reconnects": 3}, "market": {"state": "reconnecting", "reconnects": 7}},
    "database": {"health": "degraded", "reason": "down", "spooled": 12, "accepting_orders": True},
    "gateway": {
        "queued": 4,
        "in_flight": 2,
        "sent": 100,
        "failed": 1,
        "blocked_until_ms": int((T0.timestamp() + 30) * 1000),
        "orders_halted": True,
        "clock_offset_ms": -250,
        "rate_limits": {"REQUEST_WEIGHT/60s": {"used": 600, "limit": 6000, "ceiling": 5400}, "ORDERS/10s": 3},
    },
    "pairs": {"BTC/USDT": True, "ETH/USDT": False},
    "restarts": 1,
}


def _samples(metrics: Metrics, health: dict[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render(open_orders=3, halted=False, paused=True, watchers=1, health=health).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_every_health_figure_becomes_a_metric() -> None:
    got = _samples(Metrics(wall_clock=T0.timestamp), HEALTH)
    expected = {
        ("bexec_gateway_queue_depth", ()): 4,
        ("bexec_gateway_in_flight", ()): 2,
        ("bexec_gateway_requests_total", (("result", "sent"),)): 100,
        ("bexec_gateway_requests_total", (("result", "failed"),)): 1,
        ("bexec_gateway_orders_halted", ()): 1,
        ("bexec_gateway_blocked_seconds", ()): 30,
        ("bexec_gateway_clock_offset_seconds", ()): -0.25,
        ("bexec_rate_budget_used", (("limit", "REQUEST_WEIGHT/60s"),)): 600,
        ("bexec_rate_budget_limit", (("limit", "REQUEST_WEIGHT/60s"),)): 6000,
        ("bexec_rate_budget_ceiling", (("limit", "REQUEST_WEIGHT/60s"),)): 5400,
        ("bexec_rate_budget_used_ratio", (("limit", "REQUEST_WEIGHT/60s"),)): 0.1,
        ("bexec_rate_budget_used", (("limit", "ORDERS/10s"),)): 3,
        ("bexec_stream_up", (("stream", "user"),)): 1,
        ("bexec_stream_up", (("stream", "market"),)): 0,
        ("bexec_stream_reconnects_total", (("stream", "market"),)): 7,
        ("bexec_persistence_backlog", ()): 12,
        ("bexec_database_ok", ()): 0,
        ("bexec_database_accepting_orders", ()): 1,
        ("bexec_pair_actor_up", (("pair", "ETH/USDT"),)): 0,
        ("bexec_pair_restarts_total", ()): 1,
        ("bexec_wallet_btc", ()): 1.5,
        ("bexec_open_orders", ()): 3,
        ("bexec_paused", ()): 1,
    }
    assert {k: got.get(k) for k in expected} == expected


def test_missing_or_odd_health_fields_are_left_out_not_zeroed() -> None:
    odd: dict[str, Any] = {
        "streams": None,
        "database": {},
        "gateway": {"error": "TimeoutError: ", "queued": "n/a", "rate_limits": [{"name": "W", "used": 5}, 7]},
        "wallet_btc": None,
    }
    got = _samples(Metrics(), odd)
    names = {name for name, _ in got}
    assert "bexec_gateway_queue_depth" not in names and "bexec_persistence_backlog" not in names
    assert "bexec_stream_up" not in names and "bexec_wallet_btc" not in names
    assert got[("bexec_rate_budget_used", (("limit", "W"),))] == 5
    assert _samples(Metrics(), {})[("bexec_open_orders", ())] == 3  # an empty snapshot still renders


def _order(role: OrderRole, status: OrderStatus, created: datetime) -> Order:
    return Order(
        client_order_id="bx-1-f1" if role is OrderRole.FALLBACK else "bx-1-p",
        request_id="r1",
        pair="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        role=role,
        status=status,
        amount=Decimal("0.01"),
        parent_client_order_id="bx-0-p" if role is OrderRole.FALLBACK else None,
        created_at=created,
        updated_at=created,
    )


def test_fill_and_ack_latencies_are_observed_from_events() -> None:
    now = [T0.timestamp()]
    metrics = Metrics(wall_clock=lambda: now[0])
    fill = Fill(
        symbol="BTCUSDT",
        pair="BTC/USDT",
        trade_id=1,
        client_order_id="bx-1-p",
        exchange_order_id=7,
        side=Side.BUY,
        price=Decimal(60000),
        quantity=Decimal("0.01"),
        quote_quantity=Decimal(600),
        commission=Decimal(0),
        commission_asset="BTC",
        is_maker=False,
        time=T0 - timedelta(milliseconds=40),
    )
    ack = T0 - timedelta(milliseconds=100)
    primary = _order(OrderRole.PRIMARY, OrderStatus.OPEN, ack - timedelta(milliseconds=20))
    created = _order(OrderRole.FALLBACK, OrderStatus.PENDING_SUBMIT, ack)
    acked = _order(OrderRole.FALLBACK, OrderStatus.FILLED, ack - timedelta(milliseconds=300))
    for event in (
        EngineEvent(EventKind.ACCEPTED, Pair("BTC/USDT"), ack, order=primary),
        EngineEvent(EventKind.FALLBACK, Pair("BTC/USDT"), ack, order=created),  # sent, not acked: not observed
        EngineEvent(EventKind.ACCEPTED, Pair("BTC/USDT"), ack, order=acked),
        EngineEvent(EventKind.FILL, Pair("BTC/USDT"), T0, fill=fill),
    ):
        metrics.on_event(event)
    got = _samples(metrics, {})
    assert got[("bexec_fill_applied_seconds_count", ())] == 1
    assert abs(got[("bexec_fill_applied_seconds_sum", ())] - 0.04) < 1e-6
    assert got[("bexec_fill_applied_seconds_bucket", (("le", "0.05"),))] == 1
    assert got[("bexec_order_ack_seconds_count", (("role", "primary"),))] == 1
    assert abs(got[("bexec_order_ack_seconds_sum", (("role", "primary"),))] - 0.02) < 1e-6
    assert got[("bexec_order_ack_seconds_count", (("role", "fallback"),))] == 1
    assert abs(got[("bexec_order_ack_seconds_sum", (("role", "fallback"),))] - 0.3) < 1e-6
    assert got[("bexec_filled_base_total", (("pair", "BTC/USDT"), ("side", "buy")))] == 0.01


def test_the_blocked_gauge_reads_what_is_left_not_the_engine_clocks_deadline() -> None:
    # The engine's clock is off the wall clock while it catches a step up: an hour after a step back, a 60 s block's
    # deadline on it read against the wall clock showed 3,660 s (clock review).
    health = {**HEALTH, "gateway": {**HEALTH["gateway"], "blocked_until_ms": int((T0.timestamp() + 3_660) * 1000),
                                    "blocked_for_ms": 60_000}}  # fmt: skip
    got = _samples(Metrics(wall_clock=T0.timestamp), health)
    assert got[("bexec_gateway_blocked_seconds", ())] == 60
