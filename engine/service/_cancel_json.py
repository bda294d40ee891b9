"""The control API's answer to `DELETE /orders/{base}/{quote}/{request_id}`: a `CancelOutcome` as HTTP.

202 when the cancel stops the request (`cancel_sent`, `cancel_at_ack`, `withdrawn`), 404 for a request the pair
does not have (`unknown_request`) or a pair outside the whitelist, 409 `already_done` for a request that had
finished, 503 when the pair's actor is restarting (`halted`, as before), the database could not be asked or the
engine is stopping, 504 when an actor did not answer in time.
"""

from __future__ import annotations

from typing import Any

from engine.api import CancelOutcome, CancelStatus

__all__ = ["CANCEL_ANSWER_SCHEMA", "cancel_response"]

_NOT_FOUND = frozenset({CancelStatus.UNKNOWN_REQUEST, CancelStatus.NOT_WHITELISTED})
_UNAVAILABLE = {"restarting": (503, "halted"), "database": (503, "database_unavailable"),
                "timeout": (504, "engine_timeout")}  # fmt: skip

CANCEL_ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["cancel_requested", "status", "request_id", "pair", "client_order_ids", "at_ack", "message"],
    "properties": {
        "cancel_requested": {"const": True},
        "status": {
            "type": "string",
            "enum": [CancelStatus.CANCEL_SENT.value, CancelStatus.CANCEL_AT_ACK.value, CancelStatus.WITHDRAWN.value],
            "description": "cancel_sent: the cancel of `client_order_ids` is queued to the exchange; cancel_at_ack: "
            "the orders in `at_ack` are canceled at the exchange's ack of their create; withdrawn: nothing was at "
            "the exchange, the request ended here. No fallback follows; the exchange's confirmation comes as "
            "events (`canceled`, then `done`)",
        },
        "request_id": {"type": "string"},
        "pair": {"type": "string"},
        "client_order_ids": {"type": "array", "items": {"type": "string"}},
        "at_ack": {"type": "array", "items": {"type": "string"}},
        "final_status": {"type": ["string", "null"], "description": "withdrawn: how the request ended, if it started"},
        "message": {"type": "string"},
    },
}
"""The OpenAPI schema of the 202 body."""


def cancel_response(outcome: CancelOutcome) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body answering a cancel."""
    final = None if outcome.final_status is None else outcome.final_status.value
    if outcome.canceling:
        return 202, {
            "cancel_requested": True,
            "status": outcome.status.value,
            "request_id": outcome.request_id,
            "pair": outcome.pair,
            "client_order_ids": list(outcome.client_order_ids),
            "at_ack": list(outcome.at_ack),
            "final_status": final,
            "message": outcome.message,
        }
    body: dict[str, Any] = {"message": outcome.message, "status": outcome.status.value}
    if outcome.status is CancelStatus.ALREADY_DONE:
        return 409, {"error": "already_done", **body, "final_status": final}
    if outcome.status in _NOT_FOUND:
        return 404, {"error": "not_found", **body}
    if outcome.details:
        body["details"] = dict(outcome.details)
    if outcome.status is CancelStatus.UNAVAILABLE:
        status, error = _UNAVAILABLE.get(outcome.details.get("cause", ""), (503, "engine_unavailable"))
        return status, {"error": error, **body}
    return 503, {"error": "engine_unavailable", **body}  # shutting_down
