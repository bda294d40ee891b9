"""Builders of synthetic domain records for storage tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.domain import (
    ClientOrderId,
    ErrorRecord,
    ExchangeOrderId,
    Fill,
    IndicatorSnapshot,
    Order,
    OrderRequest,
    OrderStatus,
    Pair,
    RequestId,
    RequestRecord,
    Side,
    Symbol,
    Trade,
    TradeId,
    TradeStatus,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def order(cid: str = "c-1", **over: Any) -> Order:
    data: dict[str, Any] = {
        "client_order_id": cid,
        "request_id": f"r-{cid}",
        "pair": "BTC/USDT",
        "side": "buy",
        "order_type": "limit",
        "status": OrderStatus.OPEN,
        "price": Decimal("50000.01"),
        "amount": Decimal("0.5"),
        "created_at": T0,
        "updated_at": T0,
    }
    data.update(over)
    return Order.model_validate(data)


def progressed(o: Order, filled: Decimal, status: OrderStatus, seconds: int = 1, **over: Any) -> Order:
    data = o.model_dump()
    data.update(
        filled=filled,
        remaining=o.amount - filled,
        status=status,
        updated_at=o.updated_at + timedelta(seconds=seconds),
        **over,
    )
    return Order.model_validate(data)


def fill(trade_id: int, cid: str = "c-1", qty: Decimal = Decimal("0.1"), **over: Any) -> Fill:
    price = over.pop("price", Decimal("50000.01"))
    data: dict[str, Any] = {
        "symbol": Symbol("BTCUSDT"),
        "pair": Pair("BTC/USDT"),
        "trade_id": TradeId(trade_id),
        "client_order_id": ClientOrderId(cid),
        "exchange_order_id": ExchangeOrderId(1000),
        "side": Side.BUY,
        "price": price,
        "quantity": qty,
        "quote_quantity": price * qty,
        "commission": Decimal("0.00001"),
        "commission_asset": "BNB",
        "is_maker": True,
        "time": T0 + timedelta(milliseconds=trade_id),
    }
    data.update(over)
    return Fill.model_validate(data)


def trade(rid: str, **over: Any) -> Trade:
    data: dict[str, Any] = {
        "request_id": RequestId(rid),
        "pair": Pair("BTC/USDT"),
        "side": Side.BUY,
        "requested": Decimal(1),
        "status": TradeStatus.OPEN,
        "created_at": T0,
        "timeframe": "5m",
        "strategy": "rsi_dip",
    }
    data.update(over)
    return Trade.model_validate(data)


def error(n: int, operation: str = "create_order", **over: Any) -> ErrorRecord:
    data: dict[str, Any] = {
        "operation": operation,
        "exchange_code": -2010,
        "message": f"insufficient balance #{n}",
        "context": {"attempt": str(n)},
        "pair": "BTC/USDT",
        "time": T0 + timedelta(seconds=n),
    }
    data.update(over)
    return ErrorRecord.model_validate(data)


def snapshot(rid: str, n: int = 0) -> IndicatorSnapshot:
    return IndicatorSnapshot(
        request_id=RequestId(rid),
        pair=Pair("BTC/USDT"),
        timeframe="5m",
        time=T0 + timedelta(minutes=n),
        values={"rsi": Decimal("28.123456789"), "ewo": Decimal("-1.5")},
    )


def request(rid: str) -> RequestRecord:
    """A request as stored with its first write-ahead (BTC/USDT buy 1 at 100)."""
    req = OrderRequest(
        request_id=RequestId(rid),
        pair=Pair("BTC/USDT"),
        side=Side.BUY,
        amount=Decimal("1"),
        price=Decimal("100"),
        idempotency_key=f"k-{rid}",
        created_at=T0,
    )
    return RequestRecord(request=req, reference_price=Decimal("100"))
