"""Simulator state shared by the REST, WS and control layers (runs on the simulator's event loop)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from aiohttp import web

from sim._accounts import Account
from sim._auth import KeyVerifier
from sim._config import SimConfig
from sim._exchange import Exchange
from sim._faults import CONN_KINDS, EVENT_KINDS, FaultSchedule
from sim._price import PriceSource
from sim._ratelimit import RateLimiter

__all__ = ["Clock", "SimCore", "Sink", "wall_clock_ms"]

Clock = Callable[[], int]


_MAX_LOGGED_REQUESTS = 100_000


def wall_clock_ms() -> int:
    """Default time source: wall clock in ms (ccxt signs with wall-clock timestamps)."""
    return time.time_ns() // 1_000_000


class Sink(Protocol):
    """A connection that receives serialized frames (written by its own writer task)."""

    def push(self, frame: bytes) -> None:
        """Queue one text frame."""
        ...

    def fault(self, kind: str) -> None:
        """Break the connection: ``ws_close``, ``ws_abort`` or ``ws_stall``."""
        ...

    async def wait_sent(self) -> None:
        """Return once every frame queued so far is written to the socket (or the connection is gone)."""
        ...


@dataclass
class UserSub:
    """One user-data subscription: where its events go and how they are framed."""

    sink: Sink
    subscription_id: int | None  # None → unwrapped (Binance.US listenKey stream)


@dataclass
class SimCore:
    """Exchange, limiter, faults, keys and subscriptions; not thread-safe (loop-confined)."""

    config: SimConfig
    clock: Clock = wall_clock_ms
    price_source: PriceSource | None = None
    exchange: Exchange = field(init=False)
    limiter: RateLimiter = field(init=False)
    faults: FaultSchedule = field(init=False)
    verifiers: dict[str, KeyVerifier] = field(init=False)
    by_key: dict[str, Account] = field(init=False)
    user_subs: dict[str, list[UserSub]] = field(default_factory=dict)
    market_sinks: dict[str, set[Sink]] = field(default_factory=dict)
    listen_keys: dict[str, str] = field(default_factory=dict)
    sub_listeners: list[Callable[[], None]] = field(default_factory=list)
    _held: dict[str, bytes] = field(default_factory=dict)
    # Per account: user events held by ``delay_events`` as (loop time due, event), sent in order when due.
    _delayed: dict[str, deque[tuple[float, bytes]]] = field(default_factory=dict)
    # Every HTTP request received, when ``config.record_requests`` is on (None otherwise).
    request_log: deque[dict[str, object]] | None = None

    def __post_init__(self) -> None:
        self.exchange = Exchange(self.config, self.price_source)
        if self.config.ids_from_clock:
            self.exchange.start_ids_at(self.clock())
        self.limiter = RateLimiter(self.config.rate_limits)
        self.faults = FaultSchedule(self.config.seed)
        self.by_key = {}
        self.verifiers = {}
        for spec in self.config.accounts:
            self.by_key[spec.api_key] = self.exchange.accounts[spec.name]
            self.verifiers[spec.api_key] = KeyVerifier(spec.secret)
        self.exchange.on_first_fill = self.limiter.order_filled
        self.exchange.listening = set()
        if self.config.record_requests:
            self.request_log = deque(maxlen=_MAX_LOGGED_REQUESTS)

    async def record_request(self, request: web.BaseRequest) -> None:
        """Log one request (control calls under ``/_sim/`` excepted): what a venue could have learnt from it."""
        if self.request_log is None or request.path.startswith("/_sim/"):
            return
        body = await request.read() if request.body_exists else b""  # aiohttp caches it for the handler
        query = request.raw_path.partition("?")[2]
        self.request_log.append(
            {
                "method": request.method,
                "path": request.path,
                "query": query,
                "body": body.decode("latin-1"),
                "api_key": "X-MBX-APIKEY" in request.headers,
                "signed": "signature=" in query or b"signature=" in body,
                "websocket": request.headers.get("Upgrade", "").lower() == "websocket",
                "time": self.now(),
            }
        )

    def now(self) -> int:
        """Current simulator time in ms."""
        return self.clock()

    # ------------------------------------------------------------------ subscriptions
    def add_user_sub(self, account: str, sub: UserSub) -> None:
        """Route ``account``'s events to ``sub``."""
        self.user_subs.setdefault(account, []).append(sub)
        self._subs_changed()

    def remove_user_sub(self, account: str, sub: UserSub) -> None:
        """Stop routing ``account``'s events to ``sub``."""
        subs = self.user_subs.get(account, [])
        if sub in subs:
            subs.remove(sub)
            self._subs_changed()

    def subscription_count(self) -> int:
        """Active user-data subscriptions over all accounts."""
        return sum(len(v) for v in self.user_subs.values())

    def _subs_changed(self) -> None:
        self.exchange.listening = {name for name, subs in self.user_subs.items() if subs}
        listeners, self.sub_listeners = self.sub_listeners, []
        for notify in listeners:
            notify()

    def add_market_sink(self, stream: str, sink: Sink) -> None:
        """Route market stream ``stream`` to ``sink``."""
        self.market_sinks.setdefault(stream, set()).add(sink)
        self.exchange.market_subs.add(stream)

    def remove_market_sink(self, stream: str, sink: Sink) -> None:
        """Stop routing ``stream`` to ``sink``."""
        sinks = self.market_sinks.get(stream)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self.market_sinks[stream]
                self.exchange.market_subs.discard(stream)

    # ------------------------------------------------------------------ dispatch
    def flush(self) -> None:
        """Send every queued exchange event to its subscribers, applying event faults."""
        ex = self.exchange
        if not ex.outbox:
            return
        events, ex.outbox = ex.outbox, []
        for kind, key, payload in events:
            if kind == "user":
                self._send_user(key, orjson.dumps(payload))
            else:
                sinks = self.market_sinks.get(key)
                if sinks:
                    data = orjson.dumps(payload)
                    wrapped = b'{"stream":"' + key.encode() + b'","data":' + data + b"}"
                    for sink in list(sinks):
                        sink.push(wrapped if getattr(sink, "wrapped", False) else data)

    def _send_user(self, account: str, data: bytes) -> None:
        subs = self.user_subs.get(account)
        if not subs:
            return
        now = self.now()
        out = [data]
        delay_ms = 0
        if self.faults.entries:
            fired = self.faults.take(f"user:{account}", EVENT_KINDS, now, data[:60].decode(errors="replace"))
            kinds = {f.kind for f in fired}
            if "drop_events" in kinds:
                out = []
            elif "reorder_events" in kinds and account not in self._held:
                self._held[account] = data
                out = []
            elif "duplicate_events" in kinds:
                out = [data, data]
            delay_ms = max((f.delay_ms for f in fired if f.kind == "delay_events"), default=0)
            for conn_fault in kinds & CONN_KINDS:
                # The connection fails just as this event is due: the event is lost with it.
                out = []
                for sub in list(subs):
                    sub.sink.fault(conn_fault)
        if out and account in self._held:
            out.append(self._held.pop(account))
        if out and (delay_ms > 0 or account in self._delayed):
            self._delay(account, out, delay_ms)  # later events queue behind delayed ones: the stream stays ordered
            return
        for frame in out:
            for sub in list(subs):
                sub.sink.push(self.frame(sub, frame))

    def _delay(self, account: str, frames: list[bytes], delay_ms: int) -> None:
        loop = asyncio.get_running_loop()
        queue = self._delayed.get(account)
        due = loop.time() + max(delay_ms, 0) / 1000
        if queue is None:
            queue = self._delayed[account] = deque()
            loop.call_at(due, self._release, account)
        else:
            due = max(due, queue[-1][0])
        queue.extend((due, frame) for frame in frames)

    def _release(self, account: str) -> None:
        """Send the account's delayed events that are due (to the subscriptions open now), in order."""
        loop = asyncio.get_running_loop()
        queue = self._delayed[account]
        while queue and queue[0][0] <= loop.time():
            frame = queue.popleft()[1]
            for sub in list(self.user_subs.get(account, [])):
                sub.sink.push(self.frame(sub, frame))
        if queue:
            loop.call_at(queue[0][0], self._release, account)
        else:
            del self._delayed[account]

    async def wait_user_sent(self, account: str) -> None:
        """Return once the events queued so far on ``account``'s user streams are written to their sockets."""
        sinks = {id(sub.sink): sub.sink for sub in self.user_subs.get(account, [])}
        if sinks:
            await asyncio.gather(*(sink.wait_sent() for sink in sinks.values()))

    @staticmethod
    def frame(sub: UserSub, data: bytes) -> bytes:
        """Frame an event for ``sub``: wrapped with its subscription id on the WS API."""
        if sub.subscription_id is None:
            return data
        return b'{"subscriptionId":' + str(sub.subscription_id).encode() + b',"event":' + data + b"}"
