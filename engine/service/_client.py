"""A small client of the control API (stdlib only, so CLI commands stay fast to start).

```python
client = ApiClient("http://127.0.0.1:8787", token)
status, body = client.request("POST", "/orders", {"pair": "BTC/USDT", "side": "buy", "amount": "0.01",
                                                  "order_type": "market"})
for event in client.events():
    print(event["kind"], event["pair"])
```
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from engine.service._signing import sign_header

__all__ = ["CLOSED_PREFIX", "ApiClient", "ApiError"]


class ApiError(Exception):
    """The daemon could not be reached or did not answer with JSON."""


class ApiClient:
    """Talks to one daemon, signing each request with its token (the token itself never leaves this process)."""

    def __init__(self, url: str, token: str, timeout: float = 40.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the control API URL must be http://host:port, got {url!r}")
        self.url = url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._token = token
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"ApiClient(url={self.url!r})"  # never the token

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self, method: str, path: str, payload: bytes = b"") -> dict[str, str]:
        # Signed, not a bearer token: whatever answers at this URL (a process that took the port while the daemon
        # was down, a listener on a non-loopback network) learns nothing it can reuse.
        now_ms = time.time_ns() // 1_000_000
        return {"Authorization": sign_header(self._token, method, path, payload, now_ms), "Accept": "application/json"}

    def request(self, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
        """Send one request; returns the HTTP status and the decoded JSON body.

        Raises:
            ApiError: the daemon is not reachable or answered something that is not JSON.
        """
        payload = None if body is None else json.dumps(body).encode()
        headers = self._headers(method, path, payload or b"")
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn = self._connection(self._timeout)
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(f"the daemon at {self.url} is not reachable ({type(exc).__name__}: {exc})") from None
        finally:
            conn.close()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            raise ApiError(f"the daemon answered HTTP {response.status} without JSON") from None
        if not isinstance(data, dict):
            raise ApiError(f"the daemon answered HTTP {response.status} with unexpected JSON")
        return response.status, data

    @staticmethod
    def pair_path(pair: str, last: str) -> str:
        """``/orders/BTC/USDT/<id>`` for `pair` "BTC/USDT" (each part URL-quoted)."""
        base, _, quote_asset = pair.upper().partition("/")
        return f"/orders/{quote(base, safe='')}/{quote(quote_asset, safe='')}/{quote(last, safe='')}"

    def events(self, pair: str | None = None, on_open: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
        """Order events as they happen (server-sent events), for as long as the consumer iterates.

        `on_open` is called once the daemon confirms the subscription: every event after that is delivered.

        Raises:
            ApiError: not reachable, the daemon refused (the message carries the status), or the stream closed
                while the consumer still iterated: "the daemon's event stream closed: <why>" (the daemon's reason
                when it gave one, e.g. that it is shutting down; else how the connection ended).
        """
        path = "/events" + (f"?{urlencode({'pair': pair})}" if pair else "")
        # No read timeout: a quiet market may send nothing for a long time.
        conn = self._connection(None)
        try:
            try:
                conn.request("GET", path, headers=self._headers("GET", path) | {"Accept": "text/event-stream"})
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise ApiError(f"the daemon at {self.url} is not reachable ({type(exc).__name__}: {exc})") from None
            if response.status != 200:
                raise ApiError(f"HTTP {response.status}: {response.read().decode(errors='replace')[:200]}")
            yield from _parse_sse(response, on_open or (lambda: None))
        finally:
            conn.close()


CLOSED_PREFIX = ": closed: "
"""The comment line the daemon sends before it ends a watcher's stream, followed by the reason."""
_SILENT_END = "the connection ended without a word from the daemon (it was killed, or the network dropped)"


def _parse_sse(response: http.client.HTTPResponse, on_open: Callable[[], None]) -> Iterator[dict[str, Any]]:
    data: list[str] = []
    reason = ""
    while True:
        try:
            line = response.readline()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(f"the daemon's event stream closed: {reason or _lost(exc)}") from None
        if not line:
            # A stream never ends by design: either the daemon said why, or it went away without a word.
            raise ApiError(f"the daemon's event stream closed: {reason or _SILENT_END}")
        text = line.decode("utf-8").rstrip("\r\n")
        if text == ": subscribed":
            on_open()
        elif text.startswith(CLOSED_PREFIX):
            reason = text[len(CLOSED_PREFIX) :].strip() or "no reason given"
        elif text.startswith("data:"):
            data.append(text[5:].lstrip())
        elif not text and data:
            event = json.loads("\n".join(data))
            data = []
            if isinstance(event, dict):
                yield event


def _lost(exc: BaseException) -> str:
    # A chunked stream cut off mid-way (a killed daemon) is an IncompleteRead or a reset, not an EOF.
    return f"the connection was lost ({type(exc).__name__}: {exc}); the daemon was killed or the network dropped"
