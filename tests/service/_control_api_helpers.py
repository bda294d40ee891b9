"""Shared by the control-API tests (tests/service/test_control_api*.py): a real daemon subprocess on the embedded
defaults with its alert receivers (a webhook and a fake Telegram API), an API client for it, and the ways the
tests talk to it besides the client: raw HTTP, watching the event stream, scraping /metrics.

The fixtures are module-scoped: each test module that uses them gets its own daemon.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import signal
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from engine.service import ApiClient
from tests.service._proc import DaemonProcess
from tests.service._receiver import Receiver, receiver

BELOW_MARKET = "50000"  # a resting BTC/USDT limit buy: the embedded market trades near 60 000
TELEGRAM_TOKEN = "123456789:SENTINEL-daemon-telegram-token"


@pytest.fixture(scope="module")
def webhook() -> Iterator[Receiver]:
    with receiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def telegram() -> Iterator[Receiver]:
    with receiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, webhook: Receiver, telegram: Receiver) -> Iterator[DaemonProcess]:
    workdir = tmp_path_factory.mktemp("daemon")
    # A long limit timeout: resting test orders must not fall back to market while the module runs (tests that
    # want a fallback pass their own). A wide slippage bound that refuses beyond it: a fallback 1 % away runs,
    # one 15 % away is refused by the guard (and alerted).
    proc = DaemonProcess(
        workdir,
        FREQTRADE__EXECUTION__LIMIT_TIMEOUT_S="900",
        FREQTRADE__EXECUTION__MAX_SLIPPAGE_PCT="5",
        FREQTRADE__EXECUTION__SLIPPAGE_ACTION="refuse",
        FREQTRADE__ALERTS__WEBHOOK_URL=webhook.url,
        FREQTRADE__ALERTS__TELEGRAM_TOKEN=TELEGRAM_TOKEN,
        FREQTRADE__ALERTS__TELEGRAM_CHAT_ID="-1001",
        FREQTRADE__ALERTS__TELEGRAM_API_URL=telegram.base + "/tg",
    )
    yield proc
    proc.signal(signal.SIGTERM)
    try:
        assert proc.wait() == 0
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def client(daemon: DaemonProcess) -> ApiClient:
    return ApiClient(daemon.url, daemon.token)


def _raw(url: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _watch(client: ApiClient, kind: str) -> tuple[threading.Event, concurrent.futures.Future[dict[str, Any]]]:
    """Watch BTC/USDT events in a thread; the future resolves with the first event of `kind`."""
    subscribed = threading.Event()
    seen: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()

    def watch() -> None:
        try:
            for event in client.events("BTC/USDT", on_open=subscribed.set):
                if event["kind"] == kind:
                    seen.set_result(event)
                    return
        except Exception as exc:
            seen.set_exception(exc)

    threading.Thread(target=watch, daemon=True).start()
    assert subscribed.wait(30)
    return subscribed, seen


def _scrape(daemon: DaemonProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    parts = urlsplit(daemon.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {daemon.token}"})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Type", "").startswith("text/plain")
        text = response.read().decode()
    finally:
        conn.close()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
