"""The control API's OpenAPI 3.1 document, served at ``GET /openapi.json``.

The request body schema is generated from the same pydantic model that validates it, so the two cannot drift.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from engine.api import RefusalReason
from engine.service._schemas import OrderBody

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


_PAIR_QUERY = {"name": "pair", "in": "query", "required": False, "schema": {"type": "string", "example": "BTC/USDT"}}


@cache
def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document (built once)."""
    body = OrderBody.model_json_schema(ref_template=_REF)
    components: dict[str, Any] = dict(body.pop("$defs", {}))
    components["OrderBody"] = body
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
        {r.value for r in RefusalReason} | {"unauthorized", "invalid_request", "not_found", "engine_timeout"}
    )
    paths: dict[str, Any] = {
        "/orders": {
            "post": {
                "summary": "Submit an order request",
                "requestBody": {"required": True, **_json_body("OrderBody")},
                "responses": _responses((201, "accepted; the order at the exchange's ack"), 409, 422, 504)
                | {"200": {"description": "the idempotency key was seen before: the existing order"}},
            },
            "get": {
                "summary": "Open orders, of one pair or all",
                "parameters": [_PAIR_QUERY],
                "responses": _responses((200, "the open orders"), 404, 422),
            },
        },
        "/orders/{base}/{quote}/{client_order_id}": {
            "get": {
                "summary": "One order with its fills so far",
                "parameters": _pair_params("client_order_id"),
                "responses": _responses((200, "the order"), 404, 422),
            }
        },
        "/orders/{base}/{quote}/{request_id}": {
            "delete": {
                "summary": "Cancel a request's open order(s); no fallback follows",
                "parameters": _pair_params("request_id"),
                "responses": _responses((202, "cancel requested"), 404, 422),
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics (text format)", "responses": _responses((200, "metrics"))}},
        "/health": {"get": {"summary": "Halted, paused, open orders", "responses": _responses((200, "health"))}},
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
