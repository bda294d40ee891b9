"""The control API's route handlers (`build_app` in `_app` routes to them) and their helpers.

Every engine call that may block (orders, health, balances and stored rows ask actors with a timeout) runs in
the loop's executor so one slow pair cannot stall the other requests; `place_order` and `cancel_order` are
awaited through their futures. Query strings and bodies are validated by pydantic models (`_schemas`), so every
malformed input is a 422 naming its field.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from loguru import logger
from pydantic import ValidationError

from engine.api import Refusal, RefusalReason
from engine.service._cancel_json import cancel_response
from engine.service._client import CLOSED_PREFIX
from engine.service._metrics import CONTENT_TYPE
from engine.service._openapi import openapi_schema
from engine.service._plain import plain_text
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
    from engine.service._app import ApiState

__all__ = ["health_status"]

_PLACE_TIMEOUT_S = 30.0
_ENDED_WHY = "the daemon ended this watcher's stream (it fell too far behind the events, or the API is stopping)"


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, error: str, message: str, **extra: object) -> web.Response:
    return _json({"error": error, "message": message, **extra}, status)


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
        try:
            outcome = await asyncio.wait_for(asyncio.wrap_future(future), _PLACE_TIMEOUT_S)
        except TimeoutError:
            # Queued behind another request of the pair, or waiting out a rate limit: it may still execute. Its id
            # lets the caller cancel it (DELETE) or watch it; the same idempotency key finds it again.
            logger.bind(pair=body.pair, request_id=future.request_id, idempotency_key=body.idempotency_key).warning(
                "control API: no answer within {} s (queued, or waiting out a rate limit): 504; it may still execute",
                _PLACE_TIMEOUT_S,
            )
            return _error(504, "engine_timeout", "the engine did not answer in time; the request may still complete",
                          request_id=future.request_id)  # fmt: skip
        self.s.metrics.on_outcome(outcome, time.monotonic() - started)
        order_log = logger.bind(pair=body.pair, side=body.side, idempotency_key=body.idempotency_key)
        if isinstance(outcome, Refusal):
            order_log.info("control API: order refused ({}): {}", outcome.reason.value, outcome.message)
            return _json(outcome_json(outcome), refusal_status(outcome))
        order_log.info("control API: order {} {}", "replayed" if outcome.duplicate else "accepted",
                       outcome.order.client_order_id)  # fmt: skip
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
        orders = await self._blocking(self.s.engine.open_orders, query.pair)
        if not orders and query.pair is not None and query.pair not in self.s.engine.config.exchange.pair_whitelist:
            # A pair outside the whitelist is listed only while the engine tracks orders there (its own from
            # before the whitelist changed, or placed elsewhere).
            return _error(404, "not_found", f"{query.pair} is not a traded pair")
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
        data = await self._blocking(self.s.engine.balances)
        # The exchange's 8-place strings ("0E-8", "10.00000000") as plain exact text, like every other decimal.
        balances = {
            asset: {k: plain_text(v) for k, v in row.items()} for asset, row in data.get("balances", {}).items()
        }
        return _json({**data, "balances": balances})

    async def cancel(self, request: web.Request) -> web.Response:
        try:
            pair = _pair_of(request)
        except _Invalid as exc:
            return exc.response()
        request_id = request.match_info["request_id"]
        if pair not in self.s.engine.config.exchange.pair_whitelist:
            return _error(404, "not_found", f"{pair} is not a traded pair")
        # The engine's own answer, never a guess from the open orders: a finished request is 409 (its final
        # status said), an unknown one 404, and the answer comes once the cancel is queued to the exchange.
        future = self.s.engine.cancel_order(pair, request_id)
        try:
            outcome = await asyncio.wait_for(asyncio.wrap_future(future), _PLACE_TIMEOUT_S)
        except TimeoutError:
            return _error(504, "engine_timeout", "the engine did not answer in time; the cancel may still be sent",
                          request_id=request_id)  # fmt: skip
        status, body = cancel_response(outcome)
        logger.bind(pair=pair, request_id=request_id).info("control API: cancel {}", outcome.status.value)
        return _json(body, status)

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
            # The hub ended this stream: say why, so `watch` can tell its user rather than end as if all were well.
            why = "the daemon is shutting down" if self.s.draining else _ENDED_WHY
            await response.write(f"{CLOSED_PREFIX}{why}\n\n".encode())
        except ConnectionResetError:
            # The watcher went away; its subscription ends with this handler.
            logger.bind(remote=request.remote).debug("control API: watcher disconnected")
        finally:
            self.s.hub.detach(queue)
        return response
