"""Shortcuts of the book's hot path (bench/book_cpu.py) build exactly what the slow way builds."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.domain import Order, RequestRecord
from engine.pair._legs import ms_to_dt, order_of
from engine.pair._seen import SeenKeys
from tests.pair._book_helpers import request
from tests.pair.test_snapshots import _filled_leg


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_ms_to_dt_is_fromtimestamp(ms: int) -> None:
    expected = datetime.fromtimestamp(ms / 1000, tz=UTC)
    assert ms_to_dt(ms) == expected and ms_to_dt(ms).tzinfo is expected.tzinfo
    assert ms_to_dt(ms) is ms_to_dt(ms)  # cached


@pytest.mark.parametrize("price", [None, Decimal(60000), Decimal("0.00000001")])
def test_request_record_of_equals_validated(price: Decimal | None) -> None:
    req = request()
    built = RequestRecord.of(req, price, "binance")
    validated = RequestRecord(request=req, reference_price=price, exchange="binance", canceled=None,
                              fallback_retry=None, fallback_retry_at=None)  # fmt: skip
    assert built == validated and built.model_fields_set == validated.model_fields_set
    assert repr(built) == repr(validated)


@pytest.mark.parametrize("price", [Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity")])
def test_request_record_of_still_refuses_bad_prices(price: Decimal) -> None:
    with pytest.raises(ValidationError):
        RequestRecord.of(request(), price, "binance")


def test_trusted_models_own_their_fields_set() -> None:
    _, leg = _filled_leg()
    fields = order_of(leg).model_dump()
    a, b = Order.trusted(**fields), Order.trusted(**dict(reversed(fields.items())))  # any key order
    assert a == b == Order(**fields)
    assert a.model_fields_set == set(fields) and a.model_fields_set is not b.model_fields_set


def test_snapshot_reused_only_when_its_fields_are_unchanged() -> None:
    _, leg = _filled_leg()
    order = order_of(leg)
    # The exchange's cumulative count is not part of the snapshot: the same `Order` stands.
    leg.state = replace(leg.state, exchange_cum_qty=leg.state.exchange_cum_qty, exchange_cum_quote=Decimal(1))
    assert order_of(leg) is order
    leg.state = replace(leg.state, quote_filled=leg.state.quote_filled + 1)
    rebuilt = order_of(leg)
    assert rebuilt is not order and rebuilt.quote_filled == order.quote_filled + 1
    leg.updated_ms += 1
    assert order_of(leg) is not rebuilt and order_of(leg).updated_at > rebuilt.updated_at


@given(st.text(min_size=1), st.sampled_from([1, 64, 1000, 100_000, 1_000_000]))
def test_bloom_positions_are_double_hashing(key: str, capacity: int) -> None:
    seen = SeenKeys(capacity=capacity)
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    h1, h2 = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1
    assert seen._positions(key) == [(h1 + i * h2) % seen._bits for i in range(seen._hashes)]
