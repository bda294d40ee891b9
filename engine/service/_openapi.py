"""The control API's OpenAPI 3.1 document, served at ``GET /openapi.json``.

The request body schema is generated from the same pydantic model that validates it, so the two cannot drift.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from engine.api import RefusalReason
from engine.domain import NAMED_INDICATORS
from engine.service._cancel_json import CANCEL_ANSWER_SCHEMA
from engine.service._schemas import DECIMAL_PATTERN, OrderBody, OrdersQuery, TradesQuery

__all__ = ["openapi_schema"]

_REF = "#/components/schemas/{model}"


def _json_body(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _responses(ok: tuple[int, str], *errors: int) -> dict[str, Any]:
    texts = {
        401: "missing or wrong bearer token (no detail given)",
        404: "unknown order, request or pair",
        409: "refused by the engine's state (see `error` for the reason)",
        422: "invalid input; `fields` names each bad field",
        503: "the database (writes are spooled) or the engine (stopping) is unavailable; retry later",
        504: "the engine did not answer in time",
    }
    out: dict[str, Any] = {str(ok[0]): {"description": ok[1]}}
    for code in (*errors, 401):
        out[str(code)] = {"description": texts[code], **_json_body("Error")}
    return out


def _pair_params(last: str) -> list[dict[str, Any]]:
    return [
        {"name": "base", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Z0-9]{1,20}$"}},
        {"name": "quote", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Z0-9]{1,20}$"}},
        {"name": last, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}},
    ]


_CANCEL_404 = "no such request on the pair, running or stored (`unknown_request`), or a pair outside the whitelist"
_CANCEL_409 = "`already_done`: the request had finished (`final_status`); nothing was sent"
_CANCEL_503 = (
    "`halted`: the pair's actor is restarting (retry); `database_unavailable`: the request is not in memory and the "
    "database did not answer; `engine_unavailable`: the engine is stopping"
)
_CANCEL_RESPONSES: dict[str, Any] = {
    "202": {
        "description": "cancel requested: `status` cancel_sent, cancel_at_ack or withdrawn",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CancelAnswer"}}},
    },
    "404": {"description": _CANCEL_404, **_json_body("Error")},
    "409": {"description": _CANCEL_409, **_json_body("Error")},
    "503": {"description": _CANCEL_503, **_json_body("Error")},
}

_DUPLICATE_200 = (
    "the idempotency key was seen before: nothing new was sent; `order`, `trade` (its outcome once finished, else "
    "null) and `latest` (its most recent order)"
)

_PAIR_QUERY = {"name": "pair", "in": "query", "required": False, "schema": {"type": "string", "example": "BTC/USDT"}}


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Query parameters from the pydantic model that validates them (optional ones without their null branch)."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    params = []
    for name, original in schema["properties"].items():
        prop = dict(original)
        branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
        if branches:
            prop = {**branches[0], **{k: v for k, v in prop.items() if k not in ("default", "title")}}
        prop.pop("title", None)
        if prop.get("type") == "string" and "format" in prop:
            prop.pop("format")  # ages (12h) are accepted too, not only date-times
        description = prop.pop("description", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        if prop.get("type") == "array":
            param |= {"style": "form", "explode": True}
        params.append(param)
    return params


_DECIMAL = {"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["31.5"]}


def _order_body() -> tuple[dict[str, Any], dict[str, Any]]:
    """The body schema and its definitions, with what pydantic cannot say about them spelled out: indicators are
    decimal strings (a JSON float is refused) whose `extra` names never repeat the named ones."""
    body = OrderBody.model_json_schema(ref_template=_REF)
    defs: dict[str, Any] = dict(body.pop("$defs", {}))
    context = defs.get("StrategyContext")
    if context is not None:
        props = context["properties"]
        for name in NAMED_INDICATORS:
            if name in props:
                props[name] = {"anyOf": [_DECIMAL, {"type": "integer"}, {"type": "null"}], "default": None}
        if "extra" in props:
            props["extra"] = {
                "type": "object",
                "additionalProperties": {"anyOf": [_DECIMAL, {"type": "integer"}]},
                "propertyNames": {"not": {"enum": sorted(NAMED_INDICATORS)}},
            }
    return body, defs


@cache
def openapi_schema(pairs: tuple[str, ...] = ()) -> dict[str, Any]:
    """The OpenAPI document (built once per whitelist; with `pairs`, the body's `pair` lists them)."""
    body, components = _order_body()
    if pairs:
        body["properties"]["pair"]["enum"] = list(pairs)
    components["OrderBody"] = body
    components["CancelAnswer"] = CANCEL_ANSWER_SCHEMA
    components["Error"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "machine-readable code", "enum": None},
            "message": {"type": "string"},
            "fields": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    components["Error"]["properties"]["error"]["enum"] = sorted(
        {r.value for r in RefusalReason}
        | {
            "unauthorized",
            "invalid_request",
            "already_done",
            "not_found",
            "engine_timeout",
            "database_unavailable",
            "engine_unavailable",
            "internal_error",
        }
    )
    paths: dict[str, Any] = {
        "/trades": {
            "get": {
                "summary": "Stored trades (one per request), newest first, with filters",
                "parameters": _query_params(TradesQuery),
                "responses": _responses((200, "`trades`: the matching trades"), 422, 503, 504),
            }
        },
        "/balances": {
            "get": {
                "summary": "Account balances as last read from the exchange (free, locked: decimal strings)",
                "responses": _responses((200, "`balances`, `as_of_ms`, `wallet_btc`"), 504),
            }
        },
        "/orders": {
            "post": {
                "summary": "Submit an order request",
                "requestBody": {"required": True, **_json_body("OrderBody")},
                "responses": _responses((201, "accepted; the order at the exchange's ack"), 409, 422, 504)
                | {"200": {"description": _DUPLICATE_200}},
            },
            "get": {
                "summary": "Open orders (live) of one pair or all; with any other filter, stored orders, newest first",
                "parameters": _query_params(OrdersQuery),
                "responses": _responses((200, "`orders`, and `source`: live or database"), 404, 422, 503, 504),
            },
        },
        "/orders/{base}/{quote}/{client_order_id}": {
            "get": {
                "summary": "One order with its fills, its fallback legs (with their fills) and its request's trade",
                "parameters": _pair_params("client_order_id"),
                "responses": _responses((200, "`order`, `fills`, `fallbacks`, `trade`"), 404, 422, 503, 504),
            }
        },
        "/orders/{base}/{quote}/{request_id}": {
            "delete": {
                "summary": "Cancel a request's open order(s); no fallback follows",
                "description": "Answered once the cancel is queued to the exchange, not when the exchange confirms "
                "it: the confirmation comes as events (`canceled`, then `done`).",
                "parameters": _pair_params("request_id"),
                "responses": _responses((202, ""), 404, 409, 422, 503, 504) | _CANCEL_RESPONSES,
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics (text format)", "responses": _responses((200, "metrics"))}},
        "/health": {
            "get": {
                "summary": "Status (ok, degraded, paused, draining, halted) and the health of every part",
                "responses": _responses((200, "health: streams, database, gateway and rate budget, pairs"), 504),
            }
        },
        "/pause": {"post": {"summary": "Kill switch: refuse new requests", "responses": _responses((200, "paused"))}},
        "/resume": {"post": {"summary": "Accept new requests again", "responses": _responses((200, "resumed"))}},
        "/events": {
            "get": {
                "summary": "Order events as server-sent events (event: kind, data: JSON)",
                "parameters": [_PAIR_QUERY],
                "responses": _responses((200, "text/event-stream"), 422),
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Binance spot execution engine: control API", "version": "1"},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
