"""Static validation of new-order parameters (pure): types, required fields and exchangeInfo filters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from sim._crossing import STP_MODES
from sim._errors import SimError, bad_param
from sim._params import CLIENT_ID_RE, illegal, not_required, opt_dec, req
from sim._symbols import SymbolSpec

__all__ = ["NewOrder", "parse_new_order"]

_KNOWN_TYPES = frozenset(
    {"LIMIT", "MARKET", "LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"}
)
_SUPPORTED_TYPES = frozenset({"LIMIT", "MARKET", "LIMIT_MAKER"})


@dataclass(frozen=True)
class NewOrder:
    """A syntactically valid order that passed the static filters."""

    spec: SymbolSpec
    side: str
    type: str
    time_in_force: str
    price: Decimal | None
    qty: Decimal | None
    quote_qty: Decimal | None
    client_order_id: str
    resp_type: str
    stp_mode: str = "EXPIRE_MAKER"

    @property
    def rests(self) -> bool:
        """True if the order can rest on the book (counts towards MAX_NUM_ORDERS)."""
        return self.type == "LIMIT_MAKER" or (self.type == "LIMIT" and self.time_in_force == "GTC")


def parse_new_order(spec: SymbolSpec, ref_price: Decimal, p: Mapping[str, str]) -> NewOrder:
    """Check ``POST /api/v3/order`` parameters in Binance's order: -1102/-1100/-1106/-111x, then -1013 filters.

    Args:
        spec: The order's symbol.
        ref_price: The average/reference price for PERCENT_PRICE_BY_SIDE and market NOTIONAL.
        p: Request parameters as strings.
    """
    side = req(p, "side")
    if side not in ("BUY", "SELL"):
        raise SimError(400, -1117, "Invalid side.")
    otype = req(p, "type")
    if otype not in _KNOWN_TYPES:
        raise SimError(400, -1116, "Invalid orderType.")
    if otype not in _SUPPORTED_TYPES:
        raise SimError(400, -1014, "Unsupported order combination.")
    for unsupported in ("icebergQty", "stopPrice", "trailingDelta", "pegPriceType"):
        if p.get(unsupported):
            raise SimError(400, -1014, "Unsupported order combination.")
    tif = p.get("timeInForce")
    if otype == "LIMIT":
        if not tif:
            raise bad_param("timeInForce")
        if tif not in ("GTC", "IOC", "FOK"):
            raise SimError(400, -1115, "Invalid timeInForce.")
    elif tif:
        raise not_required("timeInForce")
    # FULL is the default for MARKET and LIMIT only; any other type (LIMIT_MAKER) defaults to ACK (binance-spot.md).
    resp_type = p.get("newOrderRespType") or ("FULL" if otype in ("MARKET", "LIMIT") else "ACK")
    if resp_type not in ("ACK", "RESULT", "FULL"):
        raise SimError(400, -1177, "Invalid newOrderRespType.")
    cid = p.get("newClientOrderId") or ""
    if cid and not CLIENT_ID_RE.match(cid):
        raise illegal("newClientOrderId")
    qty = opt_dec(p, "quantity")
    quote_qty = opt_dec(p, "quoteOrderQty")
    price = opt_dec(p, "price")
    if otype == "MARKET":
        if price is not None:
            raise not_required("price")
        if qty is None and quote_qty is None:
            raise bad_param("quantity")
        if qty is not None and quote_qty is not None:
            raise not_required("quoteOrderQty")
        if qty is not None:
            spec.check_qty(qty, market=True)
            spec.check_notional(qty * ref_price, market=True)
        elif quote_qty is not None:
            if quote_qty <= 0:
                raise illegal("quoteOrderQty")
            spec.check_notional(quote_qty, market=True)
    else:
        if quote_qty is not None:
            raise not_required("quoteOrderQty")
        if qty is None:
            raise bad_param("quantity")
        if price is None:
            raise bad_param("price")
        spec.check_price(price, side, ref_price)
        spec.check_qty(qty, market=False)
        spec.check_notional(price * qty, market=False)
    stp = p.get("selfTradePreventionMode") or "EXPIRE_MAKER"  # the symbol's defaultSelfTradePreventionMode
    if stp in ("DECREMENT", "TRANSFER"):
        raise SimError(400, -1014, "Unsupported order combination.")  # allowed at Binance, not matched here
    if stp not in STP_MODES:
        raise illegal("selfTradePreventionMode")
    return NewOrder(spec, side, otype, tif or "GTC", price, qty, quote_qty, cid, resp_type, stp)
