"""Alert delivery: every log record bound with ``alert=<key>`` goes to a webhook and/or a Telegram chat.

The engine raises alerts by logging (``logger.bind(alert=key).critical(...)``), so the sink sees every one
without the engine knowing about webhooks or Telegram. One `Alerts` sink does the shared part once:

- deduplication and rate limiting: the same key within `min_interval_s` is counted, not sent, so an outage
  is one alert plus a count (`suppressed`), not a flood;
- never blocking the caller: the sink only queues (bounded per destination; overflow is counted and dropped);
- delivery: one worker thread per destination POSTs with up to `max_attempts` tries and exponential backoff,
  so a slow Telegram never delays the webhook and the other way round.

Destinations (`Transport`) only turn an alert into one HTTP request:

- `Webhook`: JSON ``{"key", "level", "message", "time", "suppressed"}`` (optional bearer token);
- `Telegram`: the Bot API's ``sendMessage`` (JSON POST to ``{api_url}/bot{token}/sendMessage``). The bot token
  is a secret: it only ever appears in that URL, never in a log line, a repr or an exception message.

Messages pass through the log redactor first.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from engine.logs import redact

if TYPE_CHECKING:
    from loguru import Message, Record
    from pydantic import SecretStr

    from engine.config import AlertsConfig

__all__ = ["Alerts", "Telegram", "Transport", "Webhook", "alerts_from_config"]

_QUEUE_MAX = 256
_MAX_RETRY_AFTER_S = 30.0
Payload = dict[str, Any]


class Transport(Protocol):
    """One destination: sends one alert as one HTTP request."""

    name: str

    def request(self, payload: Payload) -> urllib.request.Request:
        """The HTTP request delivering `payload` (built afresh for every attempt)."""
        ...


class Webhook:
    """POSTs the alert as JSON to a URL, with an optional bearer token."""

    name = "webhook"

    def __init__(self, url: str, token: str | None = None) -> None:
        self._url = url
        self._token = token

    def __repr__(self) -> str:
        return "Webhook()"  # the URL may carry a secret path or query

    def request(self, payload: Payload) -> urllib.request.Request:
        """The JSON POST."""
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return urllib.request.Request(self._url, data=json.dumps(payload).encode(), headers=headers, method="POST")


class Telegram:
    """Sends the alert as a Telegram message through the Bot API (``sendMessage``)."""

    name = "telegram"

    def __init__(self, token: SecretStr, chat_id: str, api_url: str = "https://api.telegram.org") -> None:
        self._token = token
        self._chat_id = chat_id
        self._api_url = api_url.rstrip("/")

    def __repr__(self) -> str:
        return "Telegram()"  # never the token

    @staticmethod
    def text(payload: Payload) -> str:
        """The message text: level, key, message and how many of the key were held back."""
        held = f"\n(+{payload['suppressed']} more since the last one)" if payload["suppressed"] else ""
        return f"[{payload['level']}] {payload['key']}\n{payload['message']}{held}"

    def request(self, payload: Payload) -> urllib.request.Request:
        """The ``sendMessage`` call (plain text: no parse mode, so nothing in a message is interpreted)."""
        url = f"{self._api_url}/bot{self._token.get_secret_value()}/sendMessage"
        body = {"chat_id": self._chat_id, "text": self.text(payload)[:4096], "disable_web_page_preview": True}
        return urllib.request.Request(
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )


class _Delivery:
    """One destination's queue and worker thread: retries with backoff, counts what was delivered or dropped."""

    def __init__(self, transport: Transport, *, max_attempts: int, backoff_s: float, timeout_s: float) -> None:
        self.transport = transport
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        self._queue: queue.Queue[Payload | None] = queue.Queue(_QUEUE_MAX)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"alerts-{transport.name}", daemon=True)
        self.delivered = 0
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def offer(self, payload: Payload) -> None:
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self.dropped += 1  # counted, not logged: logging here would feed this very sink

    def _work(self) -> None:
        while (payload := self._queue.get()) is not None:
            self._deliver(payload)

    def _attempt(self, payload: Payload) -> tuple[str | None, float]:
        """(None, 0) when delivered, else (why, how long the receiver asked us to wait)."""
        try:
            request = self.transport.request(payload)
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                if 200 <= response.status < 300:
                    return None, 0.0
                return f"HTTP {response.status}", 0.0
        except urllib.error.HTTPError as exc:
            # Only the status: the exception's URL may hold a secret (Telegram's bot token).
            return f"HTTP {exc.code}", _retry_after(exc)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return type(exc).__name__, 0.0

    def _deliver(self, payload: Payload) -> None:
        name = self.transport.name
        if self._stopping.is_set():
            self.dropped += 1  # closed while this waited behind a stuck delivery: give up quietly
            return
        for attempt in range(self._max_attempts):
            reason, retry_after = self._attempt(payload)
            if reason is None:
                self.delivered += 1
                return
            if attempt + 1 == self._max_attempts:
                break
            # Backoff doubles per attempt; waiting on the stop event lets shutdown cut it short.
            logger.debug("alert {}: attempt {} failed ({}); retrying", name, attempt + 1, reason)
            if self._stopping.wait(max(self._backoff_s * 2**attempt, retry_after)):
                break
        self.dropped += 1
        logger.warning("alert {}: {} not delivered after {} attempt(s)", name, payload["key"], attempt + 1)

    def close(self, timeout_s: float) -> None:
        if self._thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout_s)
            except queue.Full:
                self._stopping.set()
            self._thread.join(timeout_s)
            self._stopping.set()


def _retry_after(exc: urllib.error.HTTPError) -> float:
    """A 429's wait: Retry-After, or Telegram's ``parameters.retry_after``; bounded; 0 when absent."""
    if exc.code != 429:
        return 0.0
    seconds: object = exc.headers.get("Retry-After") if exc.headers else None
    if seconds is None:
        try:
            seconds = json.loads(exc.read() or b"{}").get("parameters", {}).get("retry_after")
        except (ValueError, AttributeError, OSError):
            seconds = None
    try:
        return min(max(float(str(seconds)), 0.0), _MAX_RETRY_AFTER_S)  # float-ok: seconds
    except ValueError:
        return 0.0


class Alerts:
    """A loguru sink that forwards alert records to every destination, off the caller's thread.

    ```python
    alerts = Alerts([Webhook(url), Telegram(token, chat_id)], min_interval_s=60)
    alerts.install()
    ...
    alerts.close()
    ```
    """

    def __init__(
        self,
        transports: Sequence[Transport],
        *,
        min_interval_s: float = 60.0,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deliveries = [
            _Delivery(t, max_attempts=max_attempts, backoff_s=backoff_s, timeout_s=timeout_s) for t in transports
        ]
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._last_sent: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._sink_id: int | None = None

    def __repr__(self) -> str:
        return f"Alerts({', '.join(d.transport.name for d in self._deliveries)})"

    @property
    def destinations(self) -> list[str]:
        """The destinations' names (``webhook``, ``telegram``)."""
        return [d.transport.name for d in self._deliveries]

    @property
    def delivered(self) -> int:
        """Alerts delivered, summed over destinations."""
        return sum(d.delivered for d in self._deliveries)

    @property
    def dropped(self) -> int:
        """Alerts given up on (attempts exhausted or queue full), summed over destinations."""
        return sum(d.dropped for d in self._deliveries)

    def install(self) -> None:
        """Start the workers and add the sink to loguru."""
        for delivery in self._deliveries:
            delivery.start()
        self._sink_id = logger.add(self._on_record, level="WARNING", filter=_is_alert, format="{message}")

    def _on_record(self, message: Message) -> None:
        payload = self.admit(message.record)
        if payload is not None:
            for delivery in self._deliveries:
                delivery.offer(payload)

    def admit(self, record: Record) -> Payload | None:
        """The payload for `record`, or None when its key was sent less than `min_interval_s` ago (counted)."""
        key = str(record["extra"]["alert"])
        now = self._clock()
        with self._lock:
            last = self._last_sent.get(key)
            if last is not None and now - last < self._min_interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._last_sent[key] = now
            suppressed = self._suppressed.pop(key, 0)
        return {
            "key": key,
            "level": record["level"].name,
            "message": redact(record["message"]),
            "time": record["time"].isoformat(),
            "suppressed": suppressed,
        }

    def close(self, timeout_s: float = 5.0) -> None:
        """Remove the sink, deliver what is queued (within `timeout_s` per destination), stop the workers."""
        if self._sink_id is not None:
            logger.remove(self._sink_id)
            self._sink_id = None
        for delivery in self._deliveries:
            delivery.close(timeout_s)


def alerts_from_config(config: AlertsConfig, **options: Any) -> Alerts | None:
    """The configured destinations (``alerts.webhook_url``, ``alerts.telegram_*``); None when there are none."""
    transports: list[Transport] = []
    if config.webhook_url is not None:
        token = config.webhook_token.get_secret_value() if config.webhook_token else None
        transports.append(Webhook(config.webhook_url, token))
    if config.telegram_token is not None and config.telegram_chat_id is not None:
        transports.append(Telegram(config.telegram_token, config.telegram_chat_id, config.telegram_api_url))
    if not transports:
        return None
    interval_s = float(config.min_interval_s)  # float-ok: seconds
    return Alerts(transports, min_interval_s=interval_s, **options)


def _is_alert(record: Record) -> bool:
    return "alert" in record["extra"]
