"""Alert delivery: every log record bound with ``alert=<key>`` goes to a webhook and/or a Telegram chat.

The engine raises alerts by logging (``logger.bind(alert=key).critical(...)``), so the sink sees every one
without the engine knowing about webhooks or Telegram. One `Alerts` sink does the shared part once:

- deduplication per alert: key and message, durations in it aside (the message names the subject: the order,
  the stream's state). The same alert within `min_interval_s` of its delivery is counted, not sent, so an
  outage is one alert plus a count, not a flood; another subject under the same key (another order's anomaly, a
  stream turning `fatal` after `unrepairable`) is delivered. A window ending with alerts held back is summed up
  by itself ("N more <key> alerts held back in the last 60 s: <message>"): idle workers look every `tick_s`;
- never blocking the caller: the sink only queues (bounded per destination; overflow is counted and dropped);
- delivery: one worker thread per destination POSTs with up to `max_attempts` tries and exponential backoff,
  so a slow Telegram never delays the webhook and the other way round.

Destinations (`Transport`) only turn an alert into one HTTP request:

- `Webhook`: JSON ``{"key", "level", "message", "time", "suppressed", "summary"}`` (optional bearer token);
- `Telegram`: the Bot API's ``sendMessage`` (JSON POST to ``{api_url}/bot{token}/sendMessage``). The bot token
  is a secret: it only ever appears in that URL, never in a log line, a repr or an exception message.

Messages pass through the log redactor first.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
# Durations ("reconnecting in 1234 ms", "wait 500 ms") change from one alert to the next about the same thing.
_DURATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?m?s\b")
Payload = dict[str, Any]
_Idle = Callable[[], object]
_TICK: Payload = {}  # what `_work` got when the queue stayed empty until the tick


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses every redirect: urllib would repeat the request, bearer token included, to whatever host the
    Location names. A 3xx is a failed delivery (``HTTP 302``), never a delivery somewhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No redirects; the default handlers otherwise (proxies from the environment, HTTPS).
_OPENER = urllib.request.build_opener(_NoRedirect())


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
        """The message text: level, key, message and how many of the same alert were held back."""
        counted = payload["suppressed"] and not payload.get("summary")  # a summary's message says the count
        held = f"\n(+{payload['suppressed']} more since the last one)" if counted else ""
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

    def __init__(self, transport: Transport, retries: tuple[int, float, float], tick_s: float, on_idle: _Idle) -> None:
        self.transport = transport
        self._max_attempts, self._backoff_s, self._timeout_s = retries
        self._tick_s = tick_s
        self._on_idle = on_idle
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
        # Every `tick_s`, busy or idle, the worker ends the deduplication windows (off the engine's and the
        # logger's threads): a worker kept busy by a stream of distinct alerts must still send the summaries.
        next_tick = time.monotonic() + self._tick_s
        while True:
            try:
                payload = self._queue.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                payload = _TICK
            if payload is None:
                return
            if payload is not _TICK:
                self._deliver(payload)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._tick_s
                try:
                    self._on_idle()
                except Exception:  # noqa: BLE001 - logged; a worker that died here would deliver nothing more
                    logger.exception("alerts: ending the deduplication windows failed")

    def _attempt(self, payload: Payload) -> tuple[str | None, float]:
        """(None, 0) when delivered, else (why, how long the receiver asked us to wait)."""
        try:
            request = self.transport.request(payload)
            with _OPENER.open(request, timeout=self._timeout_s) as response:
                if 200 <= response.status < 300:
                    return None, 0.0
                return f"HTTP {response.status}", 0.0
        except urllib.error.HTTPError as exc:
            # Only the status: the exception's URL may hold a secret (Telegram's bot token).
            if 300 <= exc.code < 400:
                # Not followed (the token would go along): the receiver's URL needs fixing.
                logger.warning("alert {}: HTTP {} redirect refused (not followed)", self.transport.name, exc.code)
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
        tick_s: float = 1.0,
    ) -> None:
        retries = (max_attempts, backoff_s, timeout_s)
        self._deliveries = [_Delivery(t, retries, tick_s, self.flush) for t in transports]
        self._windows = _Windows(min_interval_s)
        self._clock = clock
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
            self._offer(payload)

    def _offer(self, payload: Payload) -> None:
        for delivery in self._deliveries:
            delivery.offer(payload)

    def admit(self, record: Record) -> Payload | None:
        """The payload for `record`, or None when the same alert (key and message, durations aside) went out less
        than `min_interval_s` ago (then it is counted, for the next delivery or the window's summary)."""
        key, message = str(record["extra"]["alert"]), record["message"]
        last = (record["level"].name, record["time"].isoformat(), message)
        now = self._clock()
        with self._lock:
            suppressed = self._windows.admit((key, _DURATION.sub("#", message)), now, last)
        if suppressed is None:
            return None
        return _payload(key, last[0], redact(message), last[1], suppressed, summary=False)

    def flush(self, *, everything: bool = False) -> list[Payload]:
        """Send (and return) a summary for every window that ended with alerts held back; all of them with
        `everything`. Called by the delivery workers when idle; never blocks (it only queues)."""
        now = self._clock()
        with self._lock:
            ended = self._windows.ended(now, everything=everything)
        summaries: list[Payload] = []
        for (key, _), held in ended:
            level, at, message = held.last  # the last one held back: what it said, and when
            text = f"{held.count} more {key} alerts held back in the last {self._windows.interval_s:g} s: {message}"
            summaries.append(_payload(key, level, redact(text), at, held.count))
            self._offer(summaries[-1])
        return summaries

    def close(self, timeout_s: float = 5.0) -> None:
        """Remove the sink, count out what is held back, deliver what is queued (within `timeout_s` per
        destination), stop the workers."""
        if self._sink_id is not None:
            logger.remove(self._sink_id)
            self._sink_id = None
        self.flush(everything=True)  # the operator hears of the held-back alerts before the engine goes quiet
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


@dataclass(slots=True)
class _Held:
    """The alerts held back in one window (opened at `opened`): how many, and the last one's level, time, message."""

    opened: float
    count: int = 0
    last: tuple[str, str, str] = ("", "", "")


class _Windows:
    """Deduplication windows per alert identity (key, message); pure: the caller passes the time and holds a lock.

    An alert opens a window of `interval_s` when it is delivered; the same alert again within it is counted.
    A window that ends with a count is summed up (`ended`) and opens the next window, so a flood that goes on is
    one summary per window; a window that ends with nothing held back is forgotten (the next one is delivered).
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._open: dict[tuple[str, str], _Held] = {}

    def admit(self, identity: tuple[str, str], now: float, last: tuple[str, str, str]) -> int | None:
        """None when held back (counted); else how many were held back since the last delivery (0 usually)."""
        held = self._open.get(identity)
        if held is not None and now - held.opened < self.interval_s:
            held.count += 1
            held.last = last
            return None
        # Delivered: a count the window's summary has not sent yet rides along with it.
        self._open[identity] = _Held(now)
        return held.count if held is not None else 0

    def ended(self, now: float, *, everything: bool = False) -> list[tuple[tuple[str, str], _Held]]:
        """The windows ended (all with `everything`) with alerts held back; they are reset, the empty ones dropped."""
        out: list[tuple[tuple[str, str], _Held]] = []
        for identity, held in list(self._open.items()):
            if not everything and now - held.opened < self.interval_s:
                continue
            if held.count:
                out.append((identity, held))
                self._open[identity] = _Held(now)
            else:
                del self._open[identity]  # nothing held back: forget it, or every distinct message stays forever
        return out


def _payload(key: str, level: str, message: str, at: str, suppressed: int, summary: bool = True) -> Payload:
    return {"key": key, "level": level, "message": message, "time": at, "suppressed": suppressed, "summary": summary}


def _is_alert(record: Record) -> bool:
    return "alert" in record["extra"]
