"""Client order ids carry their database's tag: an engine tells its own orders from another engine's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from db import connect, id_namespace, id_tag, migrate
from engine.domain import OrderRole
from engine.exchange import client_order_id, is_engine_id, is_own_id, parse_client_order_id

_BINANCE = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
_NAMESPACES = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)
_TAGS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567", min_size=4, max_size=4)
_TAG = re.compile(r"^[a-z2-7]{4}$")


@given(st.text(min_size=1, max_size=300), st.sampled_from(["BTC/USDT", "ETH/BTC"]), st.integers(0, 99_999), _NAMESPACES,
       _TAGS)  # fmt: skip
def test_tagged_ids_are_valid_deterministic_decodable_and_own(
    key: str, pair: str, fallback: int, ns: str, tag: str
) -> None:
    cid = client_order_id(key, pair=pair, fallback=fallback, namespace=ns, tag=tag)
    assert _BINANCE.match(cid) and cid.startswith(f"bx-{tag}-") and len(tag) == 4
    assert cid == client_order_id(key, pair=pair, fallback=fallback, namespace=ns, tag=tag)
    decoded = parse_client_order_id(cid)
    assert decoded is not None and decoded.tag == tag and decoded.fallback == fallback
    assert decoded.role is (OrderRole.PRIMARY if fallback == 0 else OrderRole.FALLBACK)
    assert decoded.matches_key(key, pair, ns, tag)
    assert not decoded.matches_key(key, pair, ns)  # the untagged id of the same key is another id
    assert is_engine_id(cid) and is_own_id(cid, tag)
    assert not is_own_id(cid, "")  # a database whose ids carry no tag: another engine's order
    other = "aaaa" if tag != "aaaa" else "bbbb"
    assert not is_own_id(cid, other)


@given(st.text(min_size=1, max_size=40), _NAMESPACES, _TAGS)
def test_an_untagged_id_is_own_only_for_a_database_without_a_tag(key: str, ns: str, tag: str) -> None:
    untagged = client_order_id(key, pair="BTC/USDT", namespace=ns)
    assert is_own_id(untagged, "") and not is_own_id(untagged, tag)
    assert parse_client_order_id(untagged) is not None


_DIGEST = "a" * 21


@pytest.mark.parametrize("cid", [f"bx-abcd-{_DIGEST[1:]}-p", f"bx-ABCD-{_DIGEST}-p", f"bx-abc-a{_DIGEST}-p",
                                 f"bx-abcd-{_DIGEST}-x", f"x-abcd-{_DIGEST}-p"])  # fmt: skip
def test_malformed_tagged_ids_are_not_engine_ids(cid: str) -> None:
    assert not is_engine_id(cid) and not is_own_id(cid, "abcd") and parse_client_order_id(cid) is None


def test_a_malformed_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="tag"):
        client_order_id("k", pair="BTC/USDT", namespace="0123456789abcdef", tag="AB1!")


def _insert_request(handle: object) -> None:
    handle.execute_sql(  # type: ignore[attr-defined]
        "INSERT INTO requests (request_id, idempotency_key, exchange, pair, payload, created_at) "
        "VALUES ('r1', 'k', 'binance', 'BTC/USDT', '{}', '2026-01-01T00:00:00.000000+00:00')"
    )


def test_a_new_database_gets_a_tag_and_one_that_holds_requests_keeps_untagged_ids(tmp_path: Path) -> None:
    fresh = connect(f"sqlite:///{tmp_path}/fresh.sqlite3")
    try:
        assert _TAG.match(id_tag(fresh)) and id_namespace(fresh)
    finally:
        fresh.close()
    # A database made at schema 10 (a namespace, untagged ids) that already holds a request: its ids stay as they
    # were, so a key used again still names its order.
    used = connect(f"sqlite:///{tmp_path}/used.sqlite3", apply_migrations=False)
    try:
        migrate(used, target=10)
        namespace = id_namespace(used)
        _insert_request(used)
        migrate(used)
        assert id_namespace(used) == namespace != "" and id_tag(used) == ""
    finally:
        used.close()
    # The same at schema 10 with nothing in it yet: it takes a tag.
    empty = connect(f"sqlite:///{tmp_path}/empty.sqlite3", apply_migrations=False)
    try:
        migrate(empty, target=10)
        migrate(empty)
        assert _TAG.match(id_tag(empty))
    finally:
        empty.close()
