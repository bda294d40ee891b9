"""The listener bus: order events fan out to subscribers, each on a thread of its own.

Pair actors hand events to the `Publisher` and move on; a slow or failing listener can never stall or kill a
pair actor (each call is guarded, as in Mopidy's listener pattern). Each listener has its own actor (thread and
inbox), so a slow listener delays only itself: the others get every event as soon as it is published. A
listener falling behind is logged (WARNING at 1,000 queued events, then at every tenfold) and again once it
has caught up; the publisher counts and warns as it hands an event over (the listener's own thread may be the
one that is stuck). `EventBus` keeps the registry; events do not pass through its thread.

A listener may instead ask to be called *inline*: on the producing actor's own thread (the pair actor, for
an order's events), before the event goes to the listener threads. That saves a thread hop (≈ 0.1–1 ms under
load, the largest share of a fill's latency after the pair actor's own work), at the price of the isolation
above: an inline listener delays its pair by its own duration, so it must be quick and never block. It is
still guarded (an exception is logged and ignored). Events of one pair arrive in order; events of different
pairs may interleave differently for different listeners.

With nobody subscribed an event has nowhere to go. `EventBus.publisher()` gives senders a `Publisher`: a
callable that reads the listeners the bus keeps current and tells none while nobody listens.

Unsubscribing waits (up to `DRAIN_S`) for the events already queued for that listener, so none is lost
and none begins after `unsubscribe` returns; past the wait the rest is dropped with a WARNING. Stopping the bus
does the same for every listener at once.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import pykka
from loguru import logger

from engine.api import EngineEvent, EngineListener, EventKind
from engine.domain import plain_decimal

__all__ = ["DRAIN_S", "EventBus", "Publisher", "log_event"]

DRAIN_S = 5.0  # float-ok: seconds
"""How long an unsubscribe, or the bus's stop, waits for a listener to take the events queued for it."""
_BACKLOG_FIRST = 1_000
BACKLOG_LIMIT = 100_000
"""Events queued for one listener past which it is dropped (an ERROR says so): a listener stuck for good must not
grow the engine's memory until it dies."""
_CHECK_EVERY = 1_024
"""Publications between two looks at the listeners' backlogs (a look takes a lock per listener)."""


class Publisher:
    """Sends events to the listeners' threads (callable from any thread; never blocks).

    An event published while the first listener is being added may miss it, exactly as an event told just
    before the subscription would.
    """

    def __init__(self) -> None:
        self.has_listeners = False
        """Written by the bus thread only; a stale read costs one skipped or one wasted event at the edge."""
        self.inline: tuple[tuple[int, EngineListener], ...] = ()
        """Inline listeners (token, listener); replaced whole by the bus thread, read by any sender."""
        self.targets: tuple[tuple[Callable[[object], None], _Backlog], ...] = ()
        """The listener actors' `tell`s with their backlog counts; replaced whole by the bus thread, read by any
        sender."""
        self.backlogs: tuple[tuple[int, Any, threading.Event], ...] = ()
        """(token, inbox, closed) of each listener actor, for `BACKLOG_LIMIT`; replaced whole by the bus thread."""
        self.on_overflow: Callable[[int], None] = lambda token: None
        """Asks the bus to unsubscribe a listener past `BACKLOG_LIMIT` (set by the bus)."""
        self._published = 0  # a race between senders only moves the next look a little

    def __call__(self, event: EngineEvent) -> None:
        """Call the inline listeners here, then hand `event` to every other listener's thread."""
        for token, listener in self.inline:
            _deliver(token, listener, event)
        if self.has_listeners:
            message = _Publish(event)
            for tell, backlog in self.targets:
                try:
                    tell(message)
                except pykka.ActorDeadError:  # unsubscribed meanwhile (a stale `targets`): nothing to deliver
                    continue
                backlog.handed += 1
                if backlog.handed - backlog.taken >= backlog.warn_at:  # two ints: no lock per event and listener
                    backlog.warn()
            self._published += 1
            if not self._published % _CHECK_EVERY:
                self._check_backlogs()

    def _check_backlogs(self) -> None:
        for token, inbox, closed in self.backlogs:
            if closed.is_set() or inbox.qsize() < BACKLOG_LIMIT:
                continue
            closed.set()  # what is queued is skipped as soon as the listener returns
            logger.bind(listener=token).error(
                "listener {} dropped: {} events behind (it has not returned for a long time, or is far slower than "
                "the events come); subscribe it again once it keeps up", token, BACKLOG_LIMIT,
            )  # fmt: skip
            self.on_overflow(token)


def _deliver(token: int, listener: EngineListener, event: EngineEvent) -> None:
    try:
        listener(event)
    except BaseException:  # noqa: BLE001 - a bad listener must not stop the others, the bus or a pair actor
        # BaseException too: a SystemExit (or any non-Exception) escaping an actor makes pykka stop every actor
        # in the process, the engine with it, silently. A listener cannot stop the engine this way.
        logger.bind(listener=token, pair=event.pair).exception("listener failed on {}", event.kind.value)


class _Backlog:
    """How far one listener is behind, counted where nothing is stuck: the publishers count the events handed to
    its actor (and warn), its thread those it took (and says it caught up). Plain ints: a race between two
    publishers may lose a count, which only moves a warning's number a little."""

    __slots__ = ("handed", "taken", "token", "warn_at")

    def __init__(self, token: int) -> None:
        self.token = token
        self.handed = self.taken = 0
        self.warn_at = _BACKLOG_FIRST
        """The next backlog to warn at (once per tenfold); back to the first once the listener caught up."""

    def warn(self) -> None:
        logger.bind(listener=self.token).warning(
            "listener {} is {} events behind: it is slower than the events come (the others are not "
            "delayed; memory grows with the backlog)", self.token, self.handed - self.taken,
        )  # fmt: skip
        self.warn_at *= 10

    def took(self, queued: int) -> None:
        """On the listener's thread, after each event: `queued` events are still in its inbox."""
        self.taken += 1
        if queued == 0 and self.warn_at > _BACKLOG_FIRST:
            logger.bind(listener=self.token).info("listener {} has caught up", self.token)
            self.warn_at = _BACKLOG_FIRST


class _Drop:
    """Bus message: unsubscribe the listener `token` (past `BACKLOG_LIMIT`)."""

    __slots__ = ("token",)

    def __init__(self, token: int) -> None:
        self.token = token


class _Publish:
    """Inbox message of a listener's actor (a plain tell: no proxy call to build per event)."""

    __slots__ = ("event",)

    def __init__(self, event: EngineEvent) -> None:
        self.event = event


class _Listener(pykka.ThreadingActor):
    """One listener's thread and inbox: it delays nobody but itself."""

    # The listener is the caller's code: one stuck in it must not keep the process from exiting.
    use_daemon_thread = True

    def __init__(self, token: int, listener: EngineListener, closed: threading.Event, backlog: _Backlog) -> None:
        super().__init__()
        self._token, self._listener = token, listener
        self.closed = closed
        """Set when it may call the listener no more (unsubscribed, or the bus stopped): queued events drop."""
        self._backlog = backlog

    def on_receive(self, message: object) -> object:
        if not isinstance(message, _Publish):
            return super().on_receive(message)
        if not self.closed.is_set():
            _deliver(self._token, self._listener, message.event)
        self._backlog.took(self.actor_inbox.qsize())  # type: ignore[attr-defined]  # a threading actor's queue.Queue
        return None

    def caught_up(self) -> bool:
        """True once the events queued before this call were handled (a barrier: tests ask it)."""
        return True


class EventBus(pykka.ThreadingActor):
    """Holds the listeners: one actor per listener, or inline ones called on the producer's thread."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: dict[int, _Handle] = {}
        self._inline: dict[int, EngineListener] = {}
        self._ids = itertools.count(1)
        self._publisher = Publisher()
        tell = self.actor_ref.tell
        self._publisher.on_overflow = lambda token: tell(_Drop(token))

    def on_receive(self, message: object) -> object:
        if isinstance(message, _Drop):
            self.unsubscribe(message.token)
            return None
        return super().on_receive(message)

    def on_stop(self) -> None:
        listeners, self._listeners = self._listeners, {}
        self._sync()
        _close(listeners)

    def publisher(self) -> Publisher:
        """The sender-side callable (one per bus); its listeners follow subscribe/unsubscribe."""
        return self._publisher

    def has_listeners(self) -> bool:
        """True while at least one listener (not inline) is subscribed."""
        return bool(self._listeners)

    def listeners(self) -> list[pykka.ActorRef[_Listener]]:
        """The listeners' actors (not the inline ones); `ref.proxy().caught_up()` is a barrier on each."""
        return [handle.ref for handle in self._listeners.values()]

    def subscribe(self, listener: EngineListener, inline: bool = False) -> int:
        """Add a listener (called on a thread of its own, or `inline` on the producer's); returns a token for
        `unsubscribe`."""
        token = next(self._ids)
        if inline:
            self._inline[token] = listener
        else:
            closed = threading.Event()
            backlog = _Backlog(token)
            self._listeners[token] = _Handle(_Listener.start(token, listener, closed, backlog), closed, backlog)
        self._sync()
        return token

    def unsubscribe(self, token: int) -> bool:
        """Remove a listener once it took the events already queued for it (up to `DRAIN_S`); False if the
        token is unknown."""
        handle = self._listeners.pop(token, None)
        removed = (handle or self._inline.pop(token, None)) is not None
        self._sync()
        if handle is not None:
            _close({token: handle})
        return removed

    def publish(self, event: EngineEvent) -> None:
        """Hand `event` to every listener's thread (use with `.defer`; senders use `publisher()`)."""
        self._publisher(event)

    def _sync(self) -> None:
        self._publisher.targets = tuple((handle.ref.tell, handle.backlog) for handle in self._listeners.values())
        self._publisher.backlogs = tuple(
            (token, handle.ref.actor_inbox, handle.closed) for token, handle in self._listeners.items()
        )
        self._publisher.inline = tuple(self._inline.items())
        self._publisher.has_listeners = bool(self._listeners)


class _Handle(NamedTuple):
    ref: pykka.ActorRef[_Listener]
    closed: threading.Event
    backlog: _Backlog


def _close(listeners: dict[int, _Handle]) -> None:
    """Stop listener actors after their queued events (all at once, `DRAIN_S` in all); drop what is left."""
    stops = {token: handle.ref.stop(block=False) for token, handle in listeners.items()}
    deadline = time.monotonic() + DRAIN_S  # a real bound on a wait for the caller's code, not engine time
    for token, stopped in stops.items():
        try:
            stopped.get(timeout=max(0.0, deadline - time.monotonic()))
        except pykka.Timeout:
            listeners[token].closed.set()  # its thread is inside the listener: the rest of its inbox is skipped
            logger.bind(listener=token).warning(
                "listener {} still busy after {:.0f}s: the events queued for it are dropped and it is called no "
                "more", token, DRAIN_S,
            )  # fmt: skip


def log_event(event: EngineEvent) -> None:
    """One INFO line for an order's step — acknowledged (with the exchange's order id), filled, fallback sent,
    canceled — with its pair, request and client order id: what happened to an order can be read off the log
    alone. `done` is logged by the book (the request's sum), `external` and `error` where they arise."""
    kind = event.kind
    if kind not in _LOGGED:
        return
    bound = logger.bind(pair=event.pair, request_id=event.request_id, client_order_id=event.client_order_id)
    order, fill = event.order, event.fill
    if kind is EventKind.FILL and fill is not None:
        done = f"; order {plain_decimal(order.filled)} of {plain_decimal(order.amount)}" if order is not None else ""
        bound.info("fill {} at {} (trade {}, fee {} {}){}", plain_decimal(fill.quantity), plain_decimal(fill.price),
                 fill.trade_id, plain_decimal(fill.commission), fill.commission_asset, done)  # fmt: skip
    elif kind is EventKind.ACCEPTED:
        exchange_id = order.exchange_order_id if order is not None else None
        bound.info("order acknowledged by the exchange (order id {}): {}", exchange_id, event.message)
    else:
        bound.info("{}: {}", "fallback order sent" if kind is EventKind.FALLBACK else "order canceled", event.message)


_LOGGED = frozenset({EventKind.ACCEPTED, EventKind.FILL, EventKind.FALLBACK, EventKind.CANCELED})
