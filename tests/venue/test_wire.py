"""Binance REST wire format: exact decimals in, exact decimals out."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain import OrderStatus, Side
from engine.venue import WireFormatError, format_decimal, parse_order, production_urls, rewrite_api_urls

FULL_RESPONSE = {
    "symbol": "BTCUSDT",
    "orderId": 28,
    "orderListId": -1,
    "clientOrderId": "bx-abc",
    "transactTime": 1507725176595,
    "price": "0.00000000",
    "origQty": "10.00000000",
    "executedQty": "10.00000000",
    "origQuoteOrderQty": "0.000000",
    "cummulativeQuoteQty": "10.00000000",
    "status": "FILLED",
    "timeInForce": "GTC",
    "type": "MARKET",
    "side": "SELL",
    "workingTime": 1507725176595,
    "selfTradePreventionMode": "NONE",
    "fills": [
        {
            "price": "4000.00000000",
            "qty": "1.00000000",
            "commission": "4.00000000",
            "commissionAsset": "USDT",
            "tradeId": 56,
        },
        {
            "price": "3999.00000000",
            "qty": "9.00000000",
            "commission": "35.99100000",
            "commissionAsset": "USDT",
            "tradeId": 57,
        },
    ],
}


@given(st.decimals(min_value=Decimal("1e-8"), max_value=Decimal("1e12"), places=8, allow_nan=False))
def test_format_decimal_is_plain_and_exact(value: Decimal) -> None:
    text = format_decimal(value)
    assert "E" not in text and "e" not in text
    assert not (("." in text) and text.endswith("0"))
    assert Decimal(text) == value


def test_format_decimal_examples() -> None:
    assert format_decimal(Decimal("0.000780")) == "0.00078"
    assert format_decimal(Decimal("55.320")) == "55.32"
    assert format_decimal(Decimal("1E+1")) == "10"
    assert format_decimal(Decimal("100")) == "100"
    with pytest.raises(ValueError, match="not a finite number"):
        format_decimal(Decimal("NaN"))


def test_parse_full_order_response() -> None:
    snap = parse_order(FULL_RESPONSE)
    assert snap.status is OrderStatus.FILLED
    assert snap.side is Side.SELL
    assert snap.executed_qty == Decimal(10)
    assert [f.trade_id for f in snap.fills] == [56, 57]
    assert sum(f.quantity for f in snap.fills) == snap.executed_qty
    assert snap.fills[1].commission == Decimal("35.991")
    assert snap.time == datetime(2017, 10, 11, 12, 32, 56, 595000, tzinfo=UTC)


def test_cancel_response_reads_the_original_client_id() -> None:
    cancel = {**FULL_RESPONSE, "status": "CANCELED", "clientOrderId": "cancel-req-1", "origClientOrderId": "bx-abc"}
    assert parse_order(cancel, client_order_id_key="origClientOrderId").client_order_id == "bx-abc"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"status": "WEIRD"}, "unknown order status 'WEIRD'"),
        ({"side": "HOLD"}, "unknown side 'HOLD'"),
        ({"executedQty": "ten"}, "field 'executedQty' is not a decimal string"),
        ({"orderId": None}, "field 'orderId' missing or not an integer"),
    ],
)
def test_malformed_order_response(patch: dict[str, object], message: str) -> None:
    with pytest.raises(WireFormatError, match=message):
        parse_order({**FULL_RESPONSE, **patch})


def test_rewrite_moves_every_url_and_keeps_paths() -> None:
    api = {
        "public": "https://api.binance.com/api/v3",
        "fapiPublic": "https://fapi.binance.com/fapi/v1",
        "nested": {"x": "https://eapi.binance.com/eapi/v1"},
        "n": 3,
    }
    out = rewrite_api_urls(api, "http://127.0.0.1:9000/")
    assert out == {
        "public": "http://127.0.0.1:9000/api/v3",
        "fapiPublic": "http://127.0.0.1:9000/fapi/v1",
        "nested": {"x": "http://127.0.0.1:9000/eapi/v1"},
        "n": 3,
    }


def test_production_urls() -> None:
    assert production_urls("binanceus").ws_api is None
    assert production_urls("binance", testnet=True).rest == "https://testnet.binance.vision"
    with pytest.raises(ValueError, match="no endpoints known"):
        production_urls("binanceus", testnet=True)
