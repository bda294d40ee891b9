"""Gateway vocabulary and its pure priority queue (the actor lives in actors/gateway)."""

from engine.gateway._ops import OP_SPECS, GatewayRequest, GatewayResult, Op, OpSpec, ReplyTo
from engine.gateway._queue import Queued, RequestQueue

__all__ = ["OP_SPECS", "GatewayRequest", "GatewayResult", "Op", "OpSpec", "Queued", "ReplyTo", "RequestQueue"]
