"""The control API: an aiohttp application over the `Engine` facade, served from its own thread and loop.

Every engine call that may block (orders, health, balances and stored rows ask actors with a timeout) runs in
the loop's executor so one slow pair cannot stall the other requests; `place_order` is awaited through its
future. Query strings and bodies are validated by pydantic models (`_schemas`), so every malformed input is a
422 naming its field; an engine that does not answer is a 504, a database that is down (or an engine that is
stopping) a 503, and anything else a JSON 500 with the traceback in the log only.

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
from typing import TYPE_CHECKING, Any

import orjson
import pykka
from aiohttp import web
from loguru import logger
from pydantic import ValidationError

from db import StorageError
from engine.api import EngineEvent, Refusal, RefusalReason
from engine.service._metrics import CONTENT_TYPE, Metrics
from engine.service._openapi import openapi_schema
from engine.service._schemas import (
    OrderBody,
    OrdersQuery,
    TradesQuery,
    detail_json,
    event_json,
    field_errors,
    order_json,
    outcome_json,
    parse_pair,
    refusal_status,
    trade_json,
)

if TYPE_CHECKING:
    from engine.api import Engine

__all__ = ["ApiState", "EventHub", "build_app", "health_status"]

_PLACE_TIMEOUT_S = 30.0
_PUBLIC_PATHS = frozenset({"/openapi.json"})
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

    def __init__(self, engine: Engine, token: str, hub: EventHub) -> None:
        self.engine = engine
        self.hub = hub
        self._token = token.encode()
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


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, error: str, message: str, **extra: object) -> web.Response:
    return _json({"error": error, "message": message, **extra}, status)


def build_app(state: ApiState) -> web.Application:
    """The aiohttp application; routes and middlewares only (serving is `ControlApi`'s job)."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in _PUBLIC_PATHS and not state.authorised(request.headers.get("Authorization")):
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
        except pykka.ActorDeadError:
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

    app = web.Application(middlewares=[errors, auth], client_max_size=64 * 1024)
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


def _pair_of(request: web.Request) -> str:
    pair = parse_pair(f"{request.match_info['base']}/{request.match_info['quote']}")
    if pair is None:
        raise _Invalid("pair", "a pair is BASE/QUOTE in upper case, e.g. BTC/USDT")
    return pair


def _query_dict(request: web.Request) -> dict[str, Any]:
    """The query string as a dict; a repeated parameter becomes a list."""
    out: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        out[key] = values if len(values) > 1 else values[0]
    return out


def _invalid(exc: ValidationError) -> web.Response:
    fields = field_errors(exc)
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return _error(422, "invalid_request", message, fields=fields)


def health_status(parts: dict[str, Any], *, draining: bool, paused: bool) -> str:
    """One word for `GET /health` and `status`: halted > draining > paused > degraded > ok.

    Degraded: the database is spooling, a stream is not connected, or the rate budget holds new orders back.
    """
    if parts.get("halted"):
        return "halted"
    if draining or parts.get("shutting_down"):
        return "draining"
    if paused or parts.get("paused"):
        return "paused"
    database = parts.get("database") or {}
    streams = parts.get("streams") or {}
    gateway = parts.get("gateway") or {}
    if (
        database.get("health", "ok") != "ok"
        or any(str(s.get("state")) != "connected" for s in streams.values() if isinstance(s, dict))
        or gateway.get("orders_halted")
    ):
        return "degraded"
    return "ok"


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def response(self) -> web.Response:
        return _error(
            422,
            "invalid_request",
            f"{self.field}: {self.message}",
            fields=[{"field": self.field, "message": self.message}],
        )


class _Handlers:
    def __init__(self, state: ApiState) -> None:
        self.s = state

    async def _blocking(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    async def openapi(self, _request: web.Request) -> web.Response:
        return _json(openapi_schema(tuple(self.s.engine.config.exchange.pair_whitelist)))

    async def health(self, _request: web.Request) -> web.Response:
        engine = self.s.engine
        parts, orders = await asyncio.gather(self._blocking(engine.health), self._blocking(engine.open_orders))
        return _json(
            {
                **parts,
                "status": health_status(parts, draining=self.s.draining, paused=self.s.paused),
                "paused": self.s.paused or bool(parts.get("paused")),
                "dry_run": engine.config.execution.dry_run,
                "exchange": engine.config.exchange.name.value,
                "open_orders": len(orders),
                "watchers": self.s.hub.watchers,
            }
        )

    async def place(self, request: web.Request) -> web.Response:
        try:
            data = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(
                422, "invalid_request", "body: not valid JSON", fields=[{"field": "body", "message": "not valid JSON"}]
            )
        if not isinstance(data, dict):
            return _error(
                422,
                "invalid_request",
                "body: must be a JSON object",
                fields=[{"field": "body", "message": "must be a JSON object"}],
            )
        try:
            body = OrderBody.model_validate(data)
        except ValidationError as exc:
            self.s.metrics.invalid.inc()
            return _invalid(exc)
        if self.s.draining:
            return _json(outcome_json(Refusal(RefusalReason.SHUTTING_DOWN, "the daemon is shutting down")), 409)
        started = time.monotonic()
        future = self.s.engine.place_order(
            body.pair,
            body.side,
            body.amount,
            body.price,
            body.order_type,
            idempotency_key=body.idempotency_key,
            context=body.context,
            limit_timeout=body.limit_timeout,
            fallback=body.fallback,
        )
        outcome = await asyncio.wait_for(asyncio.wrap_future(future), _PLACE_TIMEOUT_S)
        self.s.metrics.on_outcome(outcome, time.monotonic() - started)
        order_log = logger.bind(pair=body.pair, side=body.side, idempotency_key=body.idempotency_key)
        if isinstance(outcome, Refusal):
            order_log.info("control API: order refused ({}): {}", outcome.reason.value, outcome.message)
            return _json(outcome_json(outcome), refusal_status(outcome))
        order_log.info("control API: order accepted {}", outcome.order.client_order_id)
        return _json(outcome_json(outcome), 200 if outcome.duplicate else 201)

    async def list_open(self, request: web.Request) -> web.Response:
        try:
            query = OrdersQuery.model_validate(_query_dict(request))
        except ValidationError as exc:
            return _invalid(exc)
        stored = any(request.query.get(k) is not None for k in ("status", "since", "until", "request_id", "limit"))
        if stored:
            orders = await self._blocking(
                lambda: self.s.engine.orders(
                    pair=query.pair,
                    status=query.statuses(),
                    since=query.since,
                    until=query.until,
                    request_id=query.request_id,
                    limit=query.limit,
                )
            )
            return _json({"orders": [order_json(o) for o in orders], "source": "database"})
        if query.pair is not None and query.pair not in self.s.engine.config.exchange.pair_whitelist:
            return _error(404, "not_found", f"{query.pair} is not a traded pair")
        orders = await self._blocking(self.s.engine.open_orders, query.pair)
        return _json({"orders": [order_json(o) for o in orders], "source": "live"})

    async def get_order(self, request: web.Request) -> web.Response:
        try:
            pair = _pair_of(request)
        except _Invalid as exc:
            return exc.response()
        client_order_id = request.match_info["client_order_id"]
        detail = await self._blocking(self.s.engine.order_detail, pair, client_order_id)
        if detail is None or detail.order.pair != pair:
            return _error(404, "not_found", f"no order {client_order_id} on {pair}")
        return _json(detail_json(detail))

    async def trades(self, request: web.Request) -> web.Response:
        try:
            query = TradesQuery.model_validate(_query_dict(request))
        except ValidationError as exc:
            return _invalid(exc)
        trades = await self._blocking(
            lambda: self.s.engine.trades(
                pair=query.pair,
                status=query.statuses(),
                since=query.since,
                until=query.until,
                strategy=query.strategy,
                timeframe=query.timeframe,
                indicators=query.indicators(),
                limit=query.limit,
            )
        )
        return _json({"trades": [trade_json(t) for t in trades]})

    async def balances(self, _request: web.Request) -> web.Response:
        return _json(await self._blocking(self.s.engine.balances))

    async def cancel(self, request: web.Request) -> web.Response:
        try:
            pair = _pair_of(request)
        except _Invalid as exc:
            return exc.response()
        request_id = request.match_info["request_id"]
        if pair not in self.s.engine.config.exchange.pair_whitelist:
            return _error(404, "not_found", f"{pair} is not a traded pair")
        orders = await self._blocking(self.s.engine.open_orders, pair)
        live = [o for o in orders if o.request_id == request_id]
        if not live:
            return _error(404, "not_found", f"no open order for request {request_id} on {pair}")
        try:
            self.s.engine.cancel_order(pair, request_id)
        except RuntimeError as exc:  # the pair's actor is being restarted or halted: nothing was sent
            return _error(503, "halted", str(exc))
        logger.bind(pair=pair, request_id=request_id).info("control API: cancel requested")
        return _json({"cancel_requested": True, "request_id": request_id, "orders": [order_json(o) for o in live]}, 202)

    async def metrics(self, _request: web.Request) -> web.Response:
        engine = self.s.engine
        parts, orders = await asyncio.gather(self._blocking(engine.health), self._blocking(engine.open_orders))
        text = self.s.metrics.render(
            open_orders=len(orders),
            halted=bool(parts.get("halted", engine.halted)),
            paused=self.s.paused,
            watchers=self.s.hub.watchers,
            health=parts,
        )
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE})

    async def pause(self, _request: web.Request) -> web.Response:
        return self._set_paused(True)

    async def resume(self, _request: web.Request) -> web.Response:
        return self._set_paused(False)

    def _set_paused(self, paused: bool) -> web.Response:
        self.s.engine.pause(paused)
        self.s.paused = paused
        logger.warning("control API: intake {}", "paused (kill switch)" if paused else "resumed")
        return _json({"paused": paused})

    async def events(self, request: web.Request) -> web.StreamResponse:
        pair: str | None = None
        if "pair" in request.query:
            pair = parse_pair(request.query["pair"])
            if pair is None:
                return _Invalid("pair", "a pair is BASE/QUOTE in upper case, e.g. BTC/USDT").response()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue = self.s.hub.attach()
        try:
            # A first comment tells the client the subscription is live: events from now on reach it.
            await response.write(b": subscribed\n\n")
            while (event := await queue.get()) is not None:
                if pair is not None and event.pair != pair:
                    continue
                payload = orjson.dumps(event_json(event))
                await response.write(b"event: " + event.kind.value.encode() + b"\ndata: " + payload + b"\n\n")
        except ConnectionResetError:
            # The watcher went away; its subscription ends with this handler.
            logger.bind(remote=request.remote).debug("control API: watcher disconnected")
        finally:
            self.s.hub.detach(queue)
        return response
