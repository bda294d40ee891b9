"""Deterministic client order ids: the same idempotency key always yields the same id.

Layout: `bx-<tag>-<21 base32 chars>-<leg>` (every database created since schema 11), or `bx-<26 base32
chars>-<leg>` (a database that already held requests when it reached schema 11 keeps the ids it made); at most
36 characters, within Binance's `^[a-zA-Z0-9-_]{1,36}$`.

- `bx-` marks the engine's orders. The 4-character tag is the database's (`db.id_tag`, drawn when it is
  created), so an engine tells its own orders from another engine's on the same exchange account:
  its own orders that the database does not know (a crash between send and commit) are adopted, another
  engine's are recorded as external like any order placed outside this engine, never adopted, canceled or
  traded against. Two databases share a tag by chance once in about a million (2^20 tags).
- The digest is SHA-256 over the namespace (drawn when the database is created, so keys are scoped to it: a key
  used again on a new database, or by another engine on the account, does not name the old order, which Binance
  accepts again once it is filled), the pair and the idempotency key; 105 bits of it (128 in the untagged
  layout): collisions are out of reach in practice (2^52 keys for a 50 % chance), and the key itself (possibly
  meaningful to the caller) is not sent to the exchange. Keys are per pair: the same key on two pairs is two
  requests, whose orders must not share a client order id (the database is unique on it).
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
    "is_own_id",
    "key_digest",
    "parse_client_order_id",
]

CLIENT_ID_PREFIX: Final = "bx-"
_MAX_FALLBACK: Final = 99_999
_TAGGED_DIGEST_LEN: Final = 21  # 3 + 4 + 1 + 21 + 1 + len("f99999") = 36, Binance's limit
_TAG_RE: Final = re.compile(r"^[a-z2-7]{4}$")
_BINANCE_RE: Final = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
_ENGINE_RE: Final = re.compile(r"^bx-(?:([a-z2-7]{4})-([a-z2-7]{21})|([a-z2-7]{26}))-(p|f([1-9][0-9]{0,4}))$")


def _b32(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:16]).decode("ascii").rstrip("=").lower()


def key_digest(idempotency_key: str, pair: str, namespace: str = "", *, tagged: bool = False) -> str:
    """The base32 digest of an idempotency key on a pair in `namespace` (lower case): 26 characters, or 21 for a
    tagged id. The empty namespace gives the digest made before namespaces existed (a database that predates
    them keeps it)."""
    digest = _b32(f"{namespace}\n{pair}\n{idempotency_key}" if namespace else f"{pair}\n{idempotency_key}")
    return digest[:_TAGGED_DIGEST_LEN] if tagged else digest


def client_order_id(
    idempotency_key: str, *, pair: str, fallback: int = 0, namespace: str = "", tag: str = ""
) -> ClientOrderId:
    """The client order id for a request's primary order (`fallback=0`) or its n-th fallback order, on `pair`, in
    the database's `namespace`, carrying its `tag` (`db.id_tag`; "" for a database whose ids carry none).

    Raises:
        ValueError: for an empty key or pair, a fallback number outside 0…99999, or a malformed tag.
    """
    if not idempotency_key or not pair:
        raise ValueError("idempotency key and pair must not be empty")
    if not 0 <= fallback <= _MAX_FALLBACK:
        raise ValueError(f"fallback number must be in 0…{_MAX_FALLBACK}, got {fallback}")
    if tag and not _TAG_RE.match(tag):
        raise ValueError(f"a client order id tag is 4 characters of a–z and 2–7, got {tag!r}")
    leg = "p" if fallback == 0 else f"f{fallback}"
    digest = key_digest(idempotency_key, pair, namespace, tagged=bool(tag))
    cid = f"{CLIENT_ID_PREFIX}{tag}-{digest}-{leg}" if tag else f"{CLIENT_ID_PREFIX}{digest}-{leg}"
    assert _BINANCE_RE.match(cid), cid  # structural: ≤ 36 characters, charset a–z 2–7 - p f 0–9
    return ClientOrderId(cid)


@dataclass(frozen=True, slots=True)
class EngineClientId:
    """A decoded engine client order id."""

    tag: str
    """The tag of the database that made it ("" for an untagged id)."""
    digest: str
    """The request's key digest (`key_digest`)."""
    fallback: int
    """0 for the primary order, n for the n-th fallback."""

    @property
    def role(self) -> OrderRole:
        """PRIMARY or FALLBACK."""
        return OrderRole.PRIMARY if self.fallback == 0 else OrderRole.FALLBACK

    def matches_key(self, idempotency_key: str, pair: str, namespace: str = "", tag: str = "") -> bool:
        """True if this id was made from `idempotency_key` on `pair` by a database with `namespace` and `tag`."""
        return self.tag == tag and key_digest(idempotency_key, pair, namespace, tagged=bool(tag)) == self.digest


def parse_client_order_id(cid: str) -> EngineClientId | None:
    """Decode an engine client order id (of any database); None for anything else (external or malformed)."""
    match = _ENGINE_RE.match(cid)
    if match is None:
        return None
    tag, tagged, untagged, _leg, number = match.groups()
    return EngineClientId(tag or "", tagged or untagged, int(number) if number else 0)


def is_engine_id(cid: str) -> bool:
    """True if `cid` was made by `client_order_id`, on this database or another one (`is_own_id` tells which)."""
    return _ENGINE_RE.match(cid) is not None


def is_own_id(cid: str, tag: str) -> bool:
    """True if `cid` was made by `client_order_id` with `tag` (the database's, `db.id_tag`): an order of this
    engine. An engine id with another tag is another engine's order on the same exchange account. A database
    whose ids carry no tag (`tag` ""; made before tags existed) cannot tell another untagged engine's ids from
    its own: every untagged id counts as its own, as before."""
    decoded = parse_client_order_id(cid)
    return decoded is not None and decoded.tag == tag
