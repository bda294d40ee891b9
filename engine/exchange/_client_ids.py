"""Deterministic client order ids: the same idempotency key always yields the same id.

Layout: `bx-<26 base32 chars>-<leg>`, at most 36 characters, within Binance's `^[a-zA-Z0-9-_]{1,36}$`.

- `bx-` marks the engine's orders, so orders found on the exchange that the database does not know (a crash
  between send and commit) can be adopted, and everything else is recognised as external.
- The 26 characters are the first 128 bits of SHA-256 over the database's namespace (`db.id_namespace`: drawn
  when the database is created, so keys are scoped to it: a key used again on a new database, or by another engine
  on the account, does not name the old order, which Binance accepts again once it is filled), the pair and the
  idempotency key: collisions are
  out of reach in practice (2⁶⁴ keys for a 50 % chance), and the key itself (possibly meaningful to the
  caller) is not sent to the exchange. Keys are per pair: the same key on two pairs is two requests, whose
  orders must not share a client order id (the database is unique on it).
- The leg tells the primary limit order (`p`) from the n-th fallback order (`f1`, `f2`, …), so every order
  of one request shares the digest and can be grouped without the database.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from engine.domain import ClientOrderId, OrderRole

__all__ = [
    "CLIENT_ID_PREFIX",
    "EngineClientId",
    "client_order_id",
    "is_engine_id",
    "key_digest",
    "parse_client_order_id",
]

CLIENT_ID_PREFIX: Final = "bx-"
_MAX_FALLBACK: Final = 99_999
_BINANCE_RE: Final = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
_ENGINE_RE: Final = re.compile(r"^bx-([a-z2-7]{26})-(p|f([1-9][0-9]{0,4}))$")


def key_digest(idempotency_key: str, pair: str, namespace: str = "") -> str:
    """The 26-character base32 digest of an idempotency key on a pair (lower case, no padding); an empty
    `namespace` gives the digest made before namespaces existed (a database that predates them keeps it)."""
    text = f"{pair}\n{idempotency_key}" if not namespace else f"{namespace}\n{pair}\n{idempotency_key}"
    raw = hashlib.sha256(text.encode()).digest()[:16]
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def client_order_id(idempotency_key: str, *, pair: str, fallback: int = 0, namespace: str = "") -> ClientOrderId:
    """The client order id for a request's primary order (`fallback=0`) or its n-th fallback order, on `pair`, in
    the database's `namespace`.

    Raises:
        ValueError: for an empty key or pair, or a fallback number outside 0…99999.
    """
    if not idempotency_key or not pair:
        raise ValueError("idempotency key and pair must not be empty")
    if not 0 <= fallback <= _MAX_FALLBACK:
        raise ValueError(f"fallback number must be in 0…{_MAX_FALLBACK}, got {fallback}")
    leg = "p" if fallback == 0 else f"f{fallback}"
    cid = f"{CLIENT_ID_PREFIX}{key_digest(idempotency_key, pair, namespace)}-{leg}"
    assert _BINANCE_RE.match(cid), cid  # structural: 3 + 26 + 1 + ≤ 6 ≤ 36, charset a–z 2–7 - p f 0–9
    return ClientOrderId(cid)


@dataclass(frozen=True, slots=True)
class EngineClientId:
    """A decoded engine client order id."""

    digest: str
    """The request's key digest (`key_digest(idempotency_key, pair)`)."""
    fallback: int
    """0 for the primary order, n for the n-th fallback."""

    @property
    def role(self) -> OrderRole:
        """PRIMARY or FALLBACK."""
        return OrderRole.PRIMARY if self.fallback == 0 else OrderRole.FALLBACK

    def matches_key(self, idempotency_key: str, pair: str, namespace: str = "") -> bool:
        """True if this id was made from `idempotency_key` on `pair` in `namespace`."""
        return key_digest(idempotency_key, pair, namespace) == self.digest


def parse_client_order_id(cid: str) -> EngineClientId | None:
    """Decode an engine client order id; None for anything else (external or malformed)."""
    match = _ENGINE_RE.match(cid)
    if match is None:
        return None
    return EngineClientId(match.group(1), int(match.group(3)) if match.group(3) else 0)


def is_engine_id(cid: str) -> bool:
    """True if `cid` was made by `client_order_id` (and so belongs to this engine)."""
    return _ENGINE_RE.match(cid) is not None
