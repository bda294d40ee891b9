"""A raw websockets client for the WS API (signing per binance-spot.md §2.5)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from websockets.asyncio.client import ClientConnection, connect


def ws_sign(params: dict[str, Any], secret: str) -> str:
    """Sorted, unencoded ``key=value`` payload signed with HMAC (hex), RSA or Ed25519 (base64)."""
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items())).encode()
    if "PRIVATE KEY" not in secret:
        return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    key = serialization.load_pem_private_key(secret.encode(), None)
    if isinstance(key, rsa.RSAPrivateKey):
        return base64.b64encode(key.sign(payload, padding.PKCS1v15(), hashes.SHA256())).decode()
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return base64.b64encode(key.sign(payload)).decode()


def subscribe_request(
    api_key: str, secret: str, *, recv_window: int | None = None, ts: int | None = None, bad: bool = False
) -> dict[str, Any]:
    """A ``userDataStream.subscribe.signature`` request."""
    params: dict[str, Any] = {"apiKey": api_key, "timestamp": ts if ts is not None else int(time.time() * 1000)}
    if recv_window is not None:
        params["recvWindow"] = recv_window
    params["signature"] = ws_sign(params, secret + ("x" if bad else ""))
    return {"id": str(uuid.uuid4()), "method": "userDataStream.subscribe.signature", "params": params}


async def recv_json(ws: ClientConnection, within_s: float = 5.0) -> dict[str, Any]:
    """Next frame, parsed."""
    return orjson.loads(await asyncio.wait_for(ws.recv(), within_s))


async def request(ws: ClientConnection, req: dict[str, Any]) -> dict[str, Any]:
    """Send a request and return the response with the same id (skipping events)."""
    await ws.send(orjson.dumps(req).decode())
    while True:
        msg = await recv_json(ws)
        if msg.get("id") == req["id"]:
            return msg


async def next_event(ws: ClientConnection, kind: str, within_s: float = 5.0) -> dict[str, Any]:
    """Next frame whose (wrapped) event has type ``kind``."""
    while True:
        msg = await recv_json(ws, within_s)
        ev = msg.get("event", msg)
        if isinstance(ev, dict) and ev.get("e") == kind:
            return msg


__all__ = ["ClientConnection", "connect", "next_event", "recv_json", "request", "subscribe_request", "ws_sign"]
