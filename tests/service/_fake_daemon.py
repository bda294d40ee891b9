"""A stand-in for the daemon's control API: answers `/health` and `/orders` as a healthy daemon, to `TOKEN` only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from engine.service._signing import NonceLedger, canonical_target, verify_header

TOKEN = "a-token-of-enough-length-for-the-api"


class _Daemon(BaseHTTPRequestHandler):
    """Answers as a healthy daemon does, to requests signed with the right token only (as the CLI sends them)."""

    nonces = NonceLedger()

    def do_GET(self) -> None:
        header = self.headers.get("Authorization") or ""
        parts = urlsplit(self.path)
        target = canonical_target(unquote(parts.path), parse_qsl(parts.query, keep_blank_values=True))
        if not verify_header(header, TOKEN.encode(), "GET", target, b"", _now_ms(), self.nonces):
            self._send(401, {"error": "unauthorized", "message": "bad token"})
        elif self.path == "/health":
            self._send(200, {"status": "ok", "halted": False, "paused": False, "exchange": "binance"})
        else:
            self._send(200, {"orders": []})

    def _send(self, status: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_args: object) -> None:
        pass


def _now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


@pytest.fixture
def fake_daemon_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Daemon)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
