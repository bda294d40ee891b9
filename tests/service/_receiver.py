"""A local webhook receiver: answers 503 for the first `outage` requests, then 200, and records every body."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """What the receiver saw; `wait_for(n)` blocks until `n` bodies were accepted (bounded)."""

    def __init__(self, outage: int = 0) -> None:
        self.outage = outage
        self.attempts = 0
        self.accepted: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.cond = threading.Condition()
        self.url = ""

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.accepted) >= count, timeout)
        assert ok, f"{len(self.accepted)} of {count} alerts received after {self.attempts} attempts"
        return self.accepted


@contextmanager
def receiver(outage: int = 0) -> Iterator[Receiver]:
    """Run a receiver on a free loopback port for the duration of the block."""
    state = Receiver(outage)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.cond:
                state.attempts += 1
                failing = state.attempts <= state.outage
                if not failing:
                    state.accepted.append(body)
                    state.headers.append(dict(self.headers))
                state.cond.notify_all()
            self.send_response(503 if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
