"""Binance request parameters for the pair book's orders (exact decimal strings)."""

from __future__ import annotations

from decimal import Decimal

from engine.domain import ClientOrderId, OrderType, Priority, Side, Symbol, TimeInForce
from engine.gateway import GatewayRequest, Op
from engine.venue import format_decimal, side_param

__all__ = ["cancel_request", "create_request", "fetch_request", "trades_request"]


def create_request(
    *,
    symbol: Symbol,
    pair: str,
    cid: ClientOrderId,
    side: Side,
    order_type: OrderType,
    quantity: Decimal,
    price: Decimal | None,
    time_in_force: TimeInForce,
    priority: Priority,
) -> GatewayRequest:
    """POST /api/v3/order with our client order id and a FULL response (fills included)."""
    params = {
        "symbol": symbol,
        "side": side_param(side),
        "type": order_type.value.upper(),
        "quantity": format_decimal(quantity),
        "newClientOrderId": cid,
        "newOrderRespType": "FULL",
    }
    if order_type is not OrderType.MARKET:
        if price is None:
            raise ValueError(f"a {order_type.value} order needs a price")
        params["price"] = format_decimal(price)
    if order_type is OrderType.LIMIT:
        params["timeInForce"] = time_in_force.value
    return GatewayRequest(Op.CREATE_ORDER, params, priority, key=cid, pair=pair)


def _order_ref(cid: ClientOrderId, order_id: int | None) -> dict[str, str]:
    # By the exchange's order id once the exchange may know the order by another client id (amended outside the
    # engine: order amend keep priority gives it a new one), else by ours.
    return {"orderId": str(order_id)} if order_id is not None else {"origClientOrderId": cid}


def cancel_request(symbol: Symbol, pair: str, cid: ClientOrderId, order_id: int | None = None) -> GatewayRequest:
    """DELETE /api/v3/order by our client order id (or `order_id`: see `_order_ref`), at the highest priority."""
    return GatewayRequest(Op.CANCEL_ORDER, {"symbol": symbol, **_order_ref(cid, order_id)}, Priority.CANCEL, cid, pair)


def fetch_request(symbol: Symbol, pair: str, cid: ClientOrderId, order_id: int | None = None) -> GatewayRequest:
    """GET /api/v3/order by our client order id (or `order_id`: see `_order_ref`)."""
    return GatewayRequest(Op.FETCH_ORDER, {"symbol": symbol, **_order_ref(cid, order_id)}, Priority.FALLBACK, cid, pair)


MY_TRADES_PAGE = 1000
"""Binance's largest myTrades page."""


def trades_request(symbol: Symbol, pair: str, cid: ClientOrderId, order_id: int, from_id: int = 0) -> GatewayRequest:
    """GET /api/v3/myTrades?orderId=…&fromId=…&limit=1000: the fills of one order, oldest first from `from_id`.

    Without `fromId` Binance answers only the newest page, so an order with more fills than a page could never
    get its older ones back; paging forward from 0 reaches every one."""
    params = {"symbol": symbol, "orderId": str(order_id), "fromId": str(from_id), "limit": str(MY_TRADES_PAGE)}
    return GatewayRequest(Op.MY_TRADES, params, Priority.FALLBACK, cid, pair)
