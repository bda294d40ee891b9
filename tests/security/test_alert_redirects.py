"""A webhook receiver answering a redirect: never followed (the bearer token would go to the new host), the alert
is not counted as delivered, and the refusal is logged."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from loguru import logger

from engine.service._alerts import Alerts, Webhook
from tests.service._receiver import receiver

TOKEN = "SENTINEL-WHTOKEN-aa11"


@contextmanager
def redirector(location: str, status: int) -> Iterator[str]:
    """A server answering every POST with `status` and ``Location: <location>``; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_not_followed_and_not_delivered(status: int) -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    try:
        # The target is another host name (localhost, not 127.0.0.1): urllib would send the token there.
        with receiver() as rx, redirector(rx.url.replace("127.0.0.1", "localhost"), status) as url:
            alerts = Alerts([Webhook(url, TOKEN)], backoff_s=0.01, max_attempts=2, tick_s=3600)
            alerts.install()
            logger.bind(alert="database").critical("spool full")
            alerts.close()
            assert rx.attempts == 0 and rx.headers == []
    finally:
        logger.remove(sink)
    assert (alerts.delivered, alerts.dropped) == (0, 1)
    assert any(f"HTTP {status} redirect refused" in line for line in lines)
    assert not any(TOKEN in line for line in lines)
