"""Signed requests: the CLI proves it holds the API token without ever putting the token on the wire.

A bearer token goes to whoever answers: a process that bound the configured port while the daemon was down, or
anyone reading plain HTTP on a non-loopback address. The CLI signs instead (``Authorization: EngineSig ts=…,
nonce=…,sig=…``): an HMAC-SHA256 under the token of the request's time, a random nonce, method, raw path with its
query and body digest. The daemon accepts a signature within ``MAX_SKEW_MS`` of its own wall clock and each nonce
once, so a captured request cannot be replayed or altered, and the token itself is never learned. Bearer tokens
stay accepted for curl and other HTTP clients.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["MAX_SKEW_MS", "SCHEME", "NonceLedger", "canonical_target", "sign_header", "verify_header"]

SCHEME = "EngineSig"
MAX_SKEW_MS = 30_000
"""How far a signature's time may be from the daemon's clock (either way): clients on another host drift a little."""
_MAX_NONCES = 100_000


def canonical_target(path: str, query: Iterable[tuple[str, str]]) -> str:
    """The request's target as signed: the decoded path and its decoded query pairs, sorted, unambiguously (JSON).

    Decoded on both sides because HTTP clients re-quote URLs (``%2F`` in a query goes out as ``/``).
    """
    return json.dumps([path, sorted(query)], ensure_ascii=False, separators=(",", ":"))


def _digest(token: bytes, ts: str, nonce: str, method: str, target: str, body: bytes) -> str:
    message = "\n".join((ts, nonce, method.upper(), target, hashlib.sha256(body).hexdigest())).encode()
    return hmac.new(token, message, hashlib.sha256).hexdigest()


def sign_header(token: str, method: str, url_path: str, body: bytes, now_ms: int) -> str:
    """The ``Authorization`` value for one request to `url_path` (the path as sent, with its query string)."""
    parts = urlsplit(url_path)
    target = canonical_target(unquote(parts.path), parse_qsl(parts.query, keep_blank_values=True))
    ts, nonce = str(now_ms), secrets.token_hex(16)
    return f"{SCHEME} ts={ts},nonce={nonce},sig={_digest(token.encode(), ts, nonce, method, target, body)}"


class NonceLedger:
    """The nonces of accepted signatures still inside the time window: each is accepted once."""

    def __init__(self, limit: int = _MAX_NONCES) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._limit = limit

    def first_use(self, nonce: str, ts_ms: int, now_ms: int) -> bool:
        """Record `nonce`; False when it was already used (a replay) or the ledger is full of live nonces."""
        while self._seen:
            oldest, seen_ts = next(iter(self._seen.items()))
            if seen_ts >= now_ms - 2 * MAX_SKEW_MS:
                break
            del self._seen[oldest]
        if nonce in self._seen or len(self._seen) >= self._limit:
            return False
        self._seen[nonce] = max(ts_ms, now_ms)
        return True


def verify_header(
    header: str, token: bytes, method: str, target: str, body: bytes, now_ms: int, nonces: NonceLedger
) -> bool:
    """True for a well-formed, fresh, never-used signature of exactly this request under `token` (`target`:
    `canonical_target` of the request as received)."""
    scheme, _, rest = header.partition(" ")
    if scheme != SCHEME:
        return False
    fields = dict(part.partition("=")[::2] for part in rest.split(","))
    ts, nonce, sig = fields.get("ts", ""), fields.get("nonce", ""), fields.get("sig", "")
    # ASCII first: "²".isdigit() is True and int("²") raises (a 500 and a traceback for any caller).
    if not (ts.isascii() and nonce.isascii() and sig.isascii()):
        return False
    if not (ts.isdigit() and len(ts) <= 16 and 16 <= len(nonce) <= 64 and nonce.isalnum() and len(sig) == 64):
        return False
    ts_ms = int(ts)
    if abs(now_ms - ts_ms) > MAX_SKEW_MS:
        return False
    if not hmac.compare_digest(sig.encode(), _digest(token, ts, nonce, method, target, body).encode()):
        return False
    # Only a valid signature spends its nonce: garbage cannot fill the ledger.
    return nonces.first_use(nonce, ts_ms, now_ms)
