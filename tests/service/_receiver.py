"""A local webhook (and Telegram Bot API) receiver: answers `outage_status` (503) for the first `outage` requests,
then 200, and records every accepted body, its headers and its path."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """What the receiver saw; `wait_for(n)` blocks until `n` bodies were accepted (bounded)."""

    def __init__(self, outage: int = 0, outage_status: int = 503) -> None:
        self.outage = outage
        self.outage_status = outage_status
        self.attempts = 0
        self.accepted: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.cond = threading.Condition()
        self.url = ""
        self.base = ""

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.accepted) >= count, timeout)
        assert ok, f"{len(self.accepted)} of {count} alerts received after {self.attempts} attempts"
        return self.accepted

    def wait_until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
        """The first accepted body matching `predicate` (waits for it, bounded)."""
        found: list[dict[str, Any]] = []

        def ready() -> bool:
            found[:] = [body for body in self.accepted if predicate(body)]
            return bool(found)

        with self.cond:
            ok = self.cond.wait_for(ready, timeout)
        assert ok, f"no matching alert among {self.accepted}"
        return found[0]


@contextmanager
def receiver(outage: int = 0, outage_status: int = 503) -> Iterator[Receiver]:
    """Run a receiver on a free loopback port for the duration of the block."""
    state = Receiver(outage, outage_status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.cond:
                state.attempts += 1
                failing = state.attempts <= state.outage
                if not failing:
                    state.accepted.append(body)
                    state.headers.append(dict(self.headers))
                    state.paths.append(self.path)
                state.cond.notify_all()
            answer = b'{"ok": false}' if failing else b'{"ok": true}'  # what the Bot API answers
            self.send_response(state.outage_status if failing else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
