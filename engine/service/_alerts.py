"""Alert delivery to a webhook: every log record bound with ``alert=<key>`` becomes a JSON POST.

The engine raises alerts by logging (``logger.bind(alert=key).critical(...)``), so this sink sees every one
without the engine knowing about webhooks. Delivery never blocks the caller: the sink only queues (bounded;
overflow is counted and dropped), and one worker thread POSTs with retries and exponential backoff. The same
key within `min_interval_s` is counted, not sent, so an outage is one alert plus a count, not a flood.

Payload: ``{"key", "level", "message", "time", "suppressed"}`` where `suppressed` counts the alerts of that key
held back since the previous delivery. Messages pass through the log redactor first.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

from engine.logs import redact

if TYPE_CHECKING:
    from loguru import Message

__all__ = ["WebhookAlerts"]

_QUEUE_MAX = 256


class WebhookAlerts:
    """A loguru sink that forwards alert records to a webhook, off the caller's thread."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        min_interval_s: float = 60.0,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._token = token
        self._min_interval_s = min_interval_s
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(_QUEUE_MAX)
        self._last_sent: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._work, name="alerts-webhook", daemon=True)
        self._sink_id: int | None = None
        self.delivered = 0
        self.dropped = 0

    def __repr__(self) -> str:
        return "WebhookAlerts()"  # the URL may carry a secret path or query

    def install(self) -> None:
        """Start the worker and add the sink to loguru."""
        self._thread.start()
        self._sink_id = logger.add(self._on_record, level="WARNING", filter=_is_alert, format="{message}")

    def _on_record(self, message: Message) -> None:
        record = message.record
        key = str(record["extra"]["alert"])
        now = self._clock()
        with self._lock:
            last = self._last_sent.get(key)
            if last is not None and now - last < self._min_interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last_sent[key] = now
            suppressed = self._suppressed.pop(key, 0)
        payload = {
            "key": key,
            "level": record["level"].name,
            "message": redact(record["message"]),
            "time": record["time"].isoformat(),
            "suppressed": suppressed,
        }
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self.dropped += 1  # counted, not logged: logging here would feed this very sink

    def _work(self) -> None:
        while (payload := self._queue.get()) is not None:
            self._deliver(payload)

    def _deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        for attempt in range(self._max_attempts):
            request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                    if 200 <= response.status < 300:
                        self.delivered += 1
                        return
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = type(exc).__name__
            else:
                reason = f"HTTP {response.status}"
            # Backoff doubles per attempt; waiting on the stop event lets shutdown cut it short.
            if self._stopping.wait(self._backoff_s * 2**attempt):
                break
            logger.debug("alert webhook: attempt {} failed ({}); retrying", attempt + 1, reason)
        self.dropped += 1
        logger.warning("alert webhook: {} not delivered after {} attempts", payload["key"], self._max_attempts)

    def close(self, timeout_s: float = 5.0) -> None:
        """Remove the sink, deliver what is queued (within `timeout_s`), stop the worker."""
        if self._sink_id is not None:
            logger.remove(self._sink_id)
            self._sink_id = None
        if self._thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout_s)
            except queue.Full:
                self._stopping.set()
            self._thread.join(timeout_s)
            self._stopping.set()


def _is_alert(record: Any) -> bool:
    return "alert" in record["extra"]
