"""Property tests of the `POST /orders` body: anything either validates to exact positive decimals or is refused
with every problem naming a field, never echoing the input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.service._schemas import OrderBody, field_errors

SECRET_LIKE = "s3cr3t-value-never-echoed"
FIELDS = ["pair", "side", "amount", "price", "order_type", "idempotency_key", "context", "limit_timeout", "fallback"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["BTC/USDT", "buy", "sell", "0.01", "1e400", "-0", "NaN", "market", "limit", SECRET_LIKE]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=5), scalars, max_size=2))
bodies = st.dictionaries(st.sampled_from([*FIELDS, "extra_field"]), values, max_size=9)


@given(bodies)
def test_any_body_validates_exactly_or_names_fields(body: dict[str, Any]) -> None:
    try:
        order = OrderBody.model_validate(body)
    except ValidationError as exc:
        errors = field_errors(exc)
        assert errors
        for error in errors:
            assert error["field"] and error["message"]
            assert SECRET_LIKE not in error["message"]
        return
    for value in (order.amount, order.price, order.limit_timeout):
        assert value is None or (isinstance(value, Decimal) and value.is_finite() and value > 0)
    assert not any(isinstance(v, float) for v in body.values())


def test_a_price_is_optional_whatever_the_order_type() -> None:
    # A limit without one rests at the best bid/ask; a market order with one is bounded by it (an IOC limit at
    # execution.max_slippage_pct beyond it), as Engine.place_order takes them.
    base = {"pair": "BTC/USDT", "side": "buy", "amount": "0.01"}
    assert OrderBody.model_validate(base | {"order_type": "limit"}).price is None
    bounded = OrderBody.model_validate(base | {"order_type": "market", "price": "60000"})
    assert (bounded.order_type, bounded.price) == ("market", Decimal(60000))


@given(st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**9), allow_nan=False, places=8))
def test_decimal_strings_round_trip_exactly(amount: Decimal) -> None:
    body = OrderBody.model_validate({"pair": "BTC/USDT", "side": "buy", "amount": str(amount), "order_type": "market"})
    assert body.amount == amount and str(body.amount) == str(amount)


QUERY_KEYS = ["pair", "status", "since", "until", "limit", "request_id", "strategy", "timeframe", "rsi_min", "rsi_max"]
query_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "BTC/USDT",
            "btc-usdt",
            "open",
            "open-any",
            "filled,open",
            "12h",
            "0",
            "1001",
            "1e400",
            "NaN",
            "2026-01-31T12:00:00Z",
            "9999-99-99",
            "0001-01-01T00:00:00+01:00",  # overflows when converted to UTC
            "9999-12-31T23:59:59-01:00",
            SECRET_LIKE,
        ]
    ),
)
queries = st.dictionaries(
    st.sampled_from([*QUERY_KEYS, "leverage"]),
    st.one_of(query_values, st.lists(query_values, min_size=1, max_size=3)),
    max_size=6,
)


@given(queries)
def test_any_query_string_validates_or_names_fields(query: dict[str, Any]) -> None:
    from engine.service._schemas import OrdersQuery, TradesQuery

    for model in (OrdersQuery, TradesQuery):
        try:
            parsed = model.model_validate(query)
        except ValidationError as exc:
            errors = field_errors(exc)
            assert errors and all(e["field"] and e["message"] for e in errors)
            assert all(SECRET_LIKE not in e["message"] for e in errors)
            continue
        assert 1 <= parsed.limit <= 1000
        assert parsed.since is None or parsed.since.tzinfo is not None
        assert parsed.statuses() is None or parsed.statuses()
