"""Alerts: delivered to a webhook and to Telegram through receiver outages, deduplicated per alert (key and
message), redacted, never blocking, and the Telegram bot token never in a log line, a repr or a payload."""

from __future__ import annotations

import socket

from loguru import logger
from pydantic import SecretStr

from engine.config import AlertsConfig
from engine.logs import add_secrets
from engine.service._alerts import Alerts, Telegram, Transport, Webhook, alerts_from_config
from tests.service import _alert_fixtures as _shared
from tests.service._alert_fixtures import ManualClock
from tests.service._receiver import receiver

# Every key the engine raises (engine/api/_alerting.py `log_alert`), plus the control API's own.
ENGINE_KEYS = [
    "slippage_guard",
    "external_order",
    "external_cancel",
    "stream",
    "database",
    "restart_budget",
    "stop_trading",
    "anomaly",
    "fills_missing",
    "outcome_unknown",
    "wallet",
    "write_ahead_failed",
    "late_fill",
    "adopted_order",
    "auth_failure",
]
SENTINEL_TOKEN = "987654321:SENTINEL-telegram-bot-token-xyz"


# pytest fixtures from the shared module, assigned rather than imported so test arguments may shadow them
clock = _shared.clock
make = _shared.make


def _alerts(made: list[Alerts], transports: list[Transport], clock: ManualClock, **kw: object) -> Alerts:
    # An hour's tick: the workers never end a window by themselves mid-test (test_alert_windows.py does that).
    alerts = Alerts(transports, clock=clock, backoff_s=0.01, min_interval_s=60, tick_s=3600, **kw)  # type: ignore[arg-type]
    alerts.install()
    made.append(alerts)
    return alerts


def _engine_alert(key: str, message: str) -> None:
    # Exactly what the engine's alerts callable does (engine/api/_alerting.py `log_alert`).
    logger.bind(alert=key).critical("ALERT {}: {}", key, message)


def test_delivered_after_a_receiver_outage_with_the_token(make: list[Alerts], clock: ManualClock) -> None:
    with receiver(outage=2) as rx:
        _alerts(make, [Webhook(rx.url, "hook-token")], clock)
        logger.bind(alert="database").critical("spool full: new orders halted")
        [alert] = rx.wait_for(1)
    assert rx.attempts == 3
    assert alert["key"] == "database" and alert["level"] == "CRITICAL" and alert["suppressed"] == 0
    assert alert["message"] == "spool full: new orders halted"
    assert rx.headers[0]["Authorization"] == "Bearer hook-token"


def test_same_key_is_deduplicated_then_reported_with_a_count(make: list[Alerts], clock: ManualClock) -> None:
    with receiver() as rx:
        _alerts(make, [Webhook(rx.url)], clock)
        for _ in range(5):
            logger.bind(alert="stream").critical("stream unrepairable")
        logger.bind(alert="ban").critical("418: IP banned")
        rx.wait_for(2)
        clock.now += 61
        logger.bind(alert="stream").critical("stream unrepairable")
        alerts = rx.wait_for(3)
    assert [(a["key"], a["suppressed"]) for a in alerts] == [("stream", 0), ("ban", 0), ("stream", 4)]


def test_messages_are_redacted_and_plain_logs_ignored(make: list[Alerts], clock: ManualClock) -> None:
    add_secrets(["alert-secret-0123456789"])
    with receiver() as rx:
        _alerts(make, [Webhook(rx.url)], clock)
        logger.critical("not an alert")
        logger.bind(alert="auth").critical("key alert-secret-0123456789 refused")
        [alert] = rx.wait_for(1)
    assert "alert-secret-0123456789" not in alert["message"] and alert["key"] == "auth"


def test_unreachable_webhook_drops_after_the_attempts(make: list[Alerts], clock: ManualClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        alerts = _alerts(make, [Webhook(f"http://127.0.0.1:{port}/hook")], clock, max_attempts=2)
        logger.bind(alert="x").critical("nobody listens")
        alerts.close()
    assert (alerts.delivered, alerts.dropped) == (0, 1)


def test_telegram_send_message_through_an_outage(make: list[Alerts], clock: ManualClock) -> None:
    with receiver(outage=1) as tg:
        _alerts(make, [Telegram(SecretStr(SENTINEL_TOKEN), "-100123", tg.base + "/api")], clock)
        _engine_alert("slippage_guard", "market 61000 is 1.6% from reference 60000, beyond 0.5%; refused")
        [message] = tg.wait_for(1)
    assert tg.paths == [f"/api/bot{SENTINEL_TOKEN}/sendMessage"]
    assert message["chat_id"] == "-100123" and "parse_mode" not in message
    assert message["text"].startswith("[CRITICAL] slippage_guard\nALERT slippage_guard: market 61000")


def test_every_engine_key_reaches_both_sinks_once_per_interval(make: list[Alerts], clock: ManualClock) -> None:
    with receiver() as hook, receiver() as tg:
        alerts = _alerts(make, [Webhook(hook.url), Telegram(SecretStr(SENTINEL_TOKEN), "42", tg.base)], clock)
        for key in ENGINE_KEYS:
            _engine_alert(key, f"{key} happened")
            _engine_alert(key, f"{key} happened")  # the same again within the interval: counted, not sent
        hooked = list(hook.wait_for(len(ENGINE_KEYS)))
        texts = [m["text"] for m in tg.wait_for(len(ENGINE_KEYS))]
        clock.now += 61
        _engine_alert("external_order", "external_order happened")  # before the window's summary: the count rides
        again = hook.wait_for(len(ENGINE_KEYS) + 1)[-1]
        tg_again = tg.wait_for(len(ENGINE_KEYS) + 1)[-1]["text"]
    assert sorted(a["key"] for a in hooked) == sorted(ENGINE_KEYS)
    assert all(a["suppressed"] == 0 for a in hooked)
    assert sorted(t.split("\n")[0] for t in texts) == sorted(f"[CRITICAL] {k}" for k in ENGINE_KEYS)
    assert (again["key"], again["suppressed"], again["summary"]) == ("external_order", 1, False)
    assert tg_again.endswith("(+1 more since the last one)") and "external_order happened" in tg_again
    assert alerts.destinations == ["webhook", "telegram"]


def test_a_slow_destination_never_blocks_the_logger_nor_the_other(make: list[Alerts], clock: ManualClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # accepts the connection, never answers: every attempt waits for its timeout
        silent = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with receiver() as hook:
            alerts = Alerts(
                [Telegram(SecretStr(SENTINEL_TOKEN), "42", silent), Webhook(hook.url)],
                clock=clock,
                timeout_s=30,
                max_attempts=1,
            )
            alerts.install()
            make.append(alerts)
            for i in range(300):  # more than a destination's queue holds: the excess is dropped, not waited for
                _engine_alert(f"key{i}", "x")
            hook.wait_for(256)
            alerts.close(timeout_s=0.5)
    assert alerts.dropped >= 300 - 256


def test_telegram_token_never_in_logs_reprs_or_payloads(
    make: list[Alerts], clock: ManualClock, log_lines: list[str]
) -> None:
    config = AlertsConfig(telegram_token=SecretStr(SENTINEL_TOKEN), telegram_chat_id="42")
    with receiver(outage=10, outage_status=404) as tg:  # the Bot API's answer to a wrong token
        alerts = alerts_from_config(
            config.model_copy(update={"telegram_api_url": tg.base}), backoff_s=0.01, clock=clock
        )
        assert alerts is not None
        alerts.install()
        make.append(alerts)
        _engine_alert("database", "spool full")
        alerts.close()
    assert (alerts.delivered, alerts.dropped) == (0, 1) and tg.attempts == 5
    text = "\n".join(log_lines)
    assert "alert telegram: database not delivered after 5 attempt(s)" in text
    assert SENTINEL_TOKEN not in text and "SENTINEL" not in text
    assert SENTINEL_TOKEN not in repr(alerts) and SENTINEL_TOKEN not in repr(config)


def test_no_destination_configured_means_log_only() -> None:
    assert alerts_from_config(AlertsConfig()) is None
