"""Webhook alerts: delivered through a receiver outage, deduplicated per key, redacted, never blocking."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from loguru import logger

from engine.logs import add_secrets
from engine.service._alerts import WebhookAlerts
from tests.service._receiver import receiver


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make() -> Iterator[list[WebhookAlerts]]:
    made: list[WebhookAlerts] = []
    yield made
    for alerts in made:
        alerts.close()


def _alerts(made: list[WebhookAlerts], url: str, clock: ManualClock, **kw: object) -> WebhookAlerts:
    alerts = WebhookAlerts(url, clock=clock, backoff_s=0.01, min_interval_s=60, **kw)  # type: ignore[arg-type]
    alerts.install()
    made.append(alerts)
    return alerts


def test_delivered_after_a_receiver_outage_with_the_token(make: list[WebhookAlerts], clock: ManualClock) -> None:
    with receiver(outage=2) as rx:
        _alerts(make, rx.url, clock, token="hook-token")
        logger.bind(alert="database").critical("spool full: new orders halted")
        [alert] = rx.wait_for(1)
    assert rx.attempts == 3
    assert alert["key"] == "database" and alert["level"] == "CRITICAL" and alert["suppressed"] == 0
    assert alert["message"] == "spool full: new orders halted"
    assert rx.headers[0]["Authorization"] == "Bearer hook-token"


def test_same_key_is_deduplicated_then_reported_with_a_count(make: list[WebhookAlerts], clock: ManualClock) -> None:
    with receiver() as rx:
        _alerts(make, rx.url, clock)
        for _ in range(5):
            logger.bind(alert="stream").critical("stream unrepairable")
        logger.bind(alert="ban").critical("418: IP banned")
        rx.wait_for(2)
        clock.now += 61
        logger.bind(alert="stream").critical("stream unrepairable")
        alerts = rx.wait_for(3)
    assert [(a["key"], a["suppressed"]) for a in alerts] == [("stream", 0), ("ban", 0), ("stream", 4)]


def test_messages_are_redacted_and_plain_logs_ignored(make: list[WebhookAlerts], clock: ManualClock) -> None:
    add_secrets(["alert-secret-0123456789"])
    with receiver() as rx:
        _alerts(make, rx.url, clock)
        logger.critical("not an alert")
        logger.bind(alert="auth").critical("key alert-secret-0123456789 refused")
        [alert] = rx.wait_for(1)
    assert "alert-secret-0123456789" not in alert["message"] and alert["key"] == "auth"


def test_unreachable_webhook_drops_after_the_attempts(make: list[WebhookAlerts], clock: ManualClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        alerts = _alerts(make, f"http://127.0.0.1:{port}/hook", clock, max_attempts=2)
        logger.bind(alert="x").critical("nobody listens")
        alerts.close()
    assert (alerts.delivered, alerts.dropped) == (0, 1)
