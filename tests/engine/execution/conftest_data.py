"""Shared test data: an exchangeInfo symbol like Binance's BTCUSDT and request builders."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from engine.domain import (
    FallbackKind,
    OrderRequest,
    OrderType,
    Pair,
    RequestId,
    Side,
    TimeInForce,
)
from engine.execution import Book, SymbolRules

BTCUSDT_INFO: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "status": "TRADING",
    "baseAsset": "BTC",
    "quoteAsset": "USDT",
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT"],
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
         "tickSize": "0.01000000"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
        {"filterType": "ICEBERG_PARTS", "limit": 100},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000",
         "stepSize": "0.00000000"},
        {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
         "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
         "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
    ],
}  # fmt: skip
RULES = SymbolRules.from_exchange_info(BTCUSDT_INFO)
BOOK = Book(bid=Decimal("50000.00"), ask=Decimal("50001.00"), time_ms=0)
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def request(
    amount: str = "0.01",
    price: str | None = "50000",
    *,
    side: Side = Side.BUY,
    key: str = "req-1",
    order_type: OrderType = OrderType.LIMIT,
    fallback: FallbackKind | None = None,
    time_in_force: TimeInForce = TimeInForce.GTC,
) -> OrderRequest:
    return OrderRequest(
        request_id=RequestId(key),
        pair=Pair("BTC/USDT"),
        side=side,
        amount=Decimal(amount),
        price=None if price is None else Decimal(price),
        order_type=order_type,
        idempotency_key=key,
        fallback=fallback,
        time_in_force=time_in_force,
        created_at=CREATED,
    )
