"""The control API: an aiohttp application over the `Engine` facade, served from its own thread and loop.

This module holds the application (its routes, the authentication and error middlewares), the state the
handlers share and the event hub; the route handlers are in `_handlers`. An engine that does not answer is a
504, a database that is down (or an engine that is stopping) a 503, and anything else a JSON 500 with the
traceback in the log only.

Engine events reach watchers (`GET /events`) through the `EventHub`: the engine calls it from one of its
threads and must never block there, so each event is handed to the API loop with `call_soon_threadsafe`; every
watcher has a bounded queue, and a watcher too slow to keep up is disconnected rather than allowed to grow
memory without bound.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pykka
from aiohttp import web
from loguru import logger

from db import StorageError
from engine.api import EngineEvent, EngineStopped
from engine.service._handlers import _error, _Handlers, health_status
from engine.service._metrics import Metrics
from engine.service._signing import SCHEME, NonceLedger, canonical_target, verify_header

if TYPE_CHECKING:
    from engine.api import Engine

__all__ = ["ApiState", "EventHub", "build_app", "health_status"]

_PUBLIC_PATHS = frozenset({"/openapi.json"})
_NONE: frozenset[str] = frozenset()
_QUERY_PARAMS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/openapi.json"): _NONE,
    ("GET", "/health"): _NONE,
    ("POST", "/orders"): _NONE,
    ("GET", "/orders/{base}/{quote}/{client_order_id}"): _NONE,
    ("GET", "/balances"): _NONE,
    ("DELETE", "/orders/{base}/{quote}/{request_id}"): _NONE,
    ("POST", "/pause"): _NONE,
    ("POST", "/resume"): _NONE,
    ("GET", "/events"): frozenset({"pair"}),
    ("GET", "/metrics"): _NONE,
}
"""Query parameters of the endpoints that take few or none (`GET /orders` and `GET /trades` check theirs with
their models, which forbid extra fields)."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_QUEUE_MAX = 1000
_CLOSE: None = None


class EventHub:
    """Receives engine events (it is an `EngineListener`) and streams them to async watchers."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: set[asyncio.Queue[EngineEvent | None]] = set()
        self._closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver to watchers on `loop` (the API's loop)."""
        self._loop = loop

    @property
    def watchers(self) -> int:
        """How many watchers are connected."""
        return len(self._queues)

    def __call__(self, event: EngineEvent) -> None:
        """Called by the engine (any thread): queue the event for every watcher."""
        loop = self._loop
        if loop is None or self._closed or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._deliver, event)
        except RuntimeError:
            # The loop closed between the check and the call (shutdown): nobody is listening any more.
            logger.debug("event hub: loop closed, event dropped")

    def _deliver(self, item: EngineEvent | None) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                logger.warning("event hub: a watcher fell {} events behind; disconnecting it", _QUEUE_MAX)
                self._queues.discard(queue)
                queue.get_nowait()  # make room for the close marker
                queue.put_nowait(_CLOSE)

    def attach(self) -> asyncio.Queue[EngineEvent | None]:
        """A new watcher's queue, receiving from now on; `None` in it means the stream is over.

        Attach before telling the watcher it is subscribed, so no event can fall between the two.
        """
        queue: asyncio.Queue[EngineEvent | None] = asyncio.Queue(_QUEUE_MAX)
        if self._closed:
            queue.put_nowait(_CLOSE)
        else:
            self._queues.add(queue)
        return queue

    def detach(self, queue: asyncio.Queue[EngineEvent | None]) -> None:
        """Stop delivering to `queue`."""
        self._queues.discard(queue)

    def close(self) -> None:
        """End every watcher's stream (call on the API loop)."""
        self._closed = True
        for queue in list(self._queues):
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(_CLOSE)


class ApiState:
    """What the handlers share: the engine, the token, the event hub, and whether intake is paused/draining."""

    def __init__(self, engine: Engine, token: str, hub: EventHub, wall_ms: Callable[[], int] | None = None) -> None:
        self.engine = engine
        self.hub = hub
        self._token = token.encode()
        # Signatures are checked against the wall clock the client signs with, not the engine's (a test's manual
        # clock would refuse every signed request).
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._nonces = NonceLedger()
        self.paused = engine.config.risk.kill_switch
        self.draining = False
        self.metrics = Metrics()

    def on_event(self, event: EngineEvent) -> None:
        """The engine's listener (any engine thread): count the event, then hand it to the watchers."""
        self.metrics.on_event(event)
        self.hub(event)

    def authorised(self, header: str | None) -> bool:
        """True for ``Authorization: Bearer <token>`` with the right token (constant-time comparison)."""
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), self._token)

    async def authenticated(self, request: web.Request) -> bool:
        """A bearer token, or a fresh never-used signature of this very request (`engine.service._signing`)."""
        header = request.headers.get("Authorization")
        if header is None or not header.startswith(SCHEME + " "):
            return self.authorised(header)
        body = await request.read()  # cached by aiohttp: the handler reads it again
        target = canonical_target(request.path, request.query.items())
        return verify_header(header, self._token, request.method, target, body, self._wall_ms(), self._nonces)


def build_app(state: ApiState) -> web.Application:
    """The aiohttp application; routes and middlewares only (serving is `ControlApi`'s job)."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in _PUBLIC_PATHS and not await state.authenticated(request):
            # No detail: the caller learns nothing about why (missing, malformed or wrong token).
            state.metrics.auth_failures.inc()
            logger.bind(remote=request.remote, path=request.path, alert="auth_failure").warning(
                "control API: authentication failed"
            )
            return web.json_response({"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
            raise
        except TimeoutError:
            logger.bind(path=request.path).error("control API: the engine did not answer in time")
            return _error(504, "engine_timeout", "the engine did not answer in time; the request may still complete")
        except (pykka.ActorDeadError, EngineStopped):
            # Between the engine stopping and the API stopping (shutdown), or after a fatal failure.
            return _error(503, "engine_unavailable", "the engine is not running")
        except StorageError as exc:
            # The database is down (writes are spooled): stored rows cannot be read until it is back.
            logger.bind(path=request.path).warning("control API: database unavailable ({})", type(exc).__name__)
            return _error(503, "database_unavailable", "the database is unavailable; retry later")
        except Exception:  # noqa: BLE001 - the last resort: a JSON 500, never a traceback to the caller
            # A bug, not the caller's fault: logged with its traceback, answered without internals.
            logger.bind(path=request.path).exception("control API: unexpected error")
            return _error(500, "internal_error", "unexpected error; see the daemon's log")

    @web.middleware
    async def known_query(request: web.Request, handler: Handler) -> web.StreamResponse:
        # A parameter an endpoint does not take is refused, as the filters' models refuse theirs: ignored, a
        # `GET /balances?pair=BTC/USDT` would answer every balance as if it had been filtered.
        resource = request.match_info.route.resource
        allowed = _QUERY_PARAMS.get((request.method, resource.canonical if resource is not None else ""))
        unknown = sorted(set(request.query) - allowed) if allowed is not None else []
        if unknown:
            fields = [{"field": name, "message": "unknown parameter"} for name in unknown]
            return _error(422, "invalid_request", "; ".join(f"{n}: unknown parameter" for n in unknown), fields=fields)
        return await handler(request)

    app = web.Application(middlewares=[errors, auth, known_query], client_max_size=64 * 1024)
    handlers = _Handlers(state)
    app.router.add_get("/openapi.json", handlers.openapi)
    app.router.add_get("/health", handlers.health)
    app.router.add_post("/orders", handlers.place)
    app.router.add_get("/orders", handlers.list_open)
    app.router.add_get("/orders/{base}/{quote}/{client_order_id}", handlers.get_order)
    app.router.add_get("/trades", handlers.trades)
    app.router.add_get("/balances", handlers.balances)
    app.router.add_delete("/orders/{base}/{quote}/{request_id}", handlers.cancel)
    app.router.add_post("/pause", handlers.pause)
    app.router.add_post("/resume", handlers.resume)
    app.router.add_get("/events", handlers.events)
    app.router.add_get("/metrics", handlers.metrics)
    return app
