"""What a caller may ask for: sizes any venue quotes, timeouts within a day, names the database can store."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.domain import OrderRequest, StrategyContext

_BASE: dict[str, Any] = {
    "request_id": "r-1",
    "pair": "BTC/USDT",
    "side": "buy",
    "price": Decimal("60000"),
    "idempotency_key": "k-1",
    "created_at": datetime(2026, 1, 1, tzinfo=UTC),
}


@pytest.mark.parametrize(
    "over",
    [
        {"amount": Decimal("1e999999")},  # finite, but overflowed the risk check's arithmetic
        {"amount": Decimal("1e-999999")},
        {"amount": Decimal("123456789012345678901")},
        {"amount": Decimal("0.000000000000000000001")},
        {"amount": Decimal("0.01"), "price": Decimal("1e-999999")},
        {"amount": Decimal("0.01"), "limit_timeout_s": Decimal("1e999999")},
        {"amount": Decimal("0.01"), "limit_timeout_s": Decimal("86401")},
        {"amount": Decimal("0.01"), "idempotency_key": "k" * 129},
    ],
)
def test_requests_no_venue_could_take_are_refused_at_construction(over: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        OrderRequest(**{**_BASE, **over})


@given(
    st.decimals(min_value=Decimal("1e-20"), max_value=Decimal("99999999999999999999"), places=8, allow_nan=False),
)
@settings(max_examples=200)
def test_every_ordinary_amount_is_accepted(amount: Decimal) -> None:
    if amount > 0:
        assert OrderRequest(**{**_BASE, "amount": amount}).amount == amount


def test_indicator_values_are_sized_like_amounts_but_may_be_negative() -> None:
    assert StrategyContext(rsi=Decimal("-28.5"), extra={"adx": Decimal("31.2")}).indicators()["rsi"] == Decimal("-28.5")
    with pytest.raises(ValidationError):
        StrategyContext(ema=Decimal("1e400"))
