"""Symbols, their exchangeInfo entry and the static order filters (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sim._errors import SimError, fmt

__all__ = ["SymbolSpec", "make_symbol_spec"]

_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "USD")
_DEFAULT_PRICES = {
    "BTCUSDT": Decimal("65000"),
    "ETHUSDT": Decimal("3500"),
    "BNBUSDT": Decimal("600"),
    "SOLUSDT": Decimal("150"),
    "ETHBTC": Decimal("0.054"),
    "BNBBTC": Decimal("0.0092"),
    "LTCUSDT": Decimal("80"),
    "XRPUSDT": Decimal("0.6"),
}
_QUOTE_USD = {"BTC": Decimal(65000), "ETH": Decimal(3500), "BNB": Decimal(600), "EUR": Decimal("1.1")}
_QUOTE_MIN_NOTIONAL = {"BTC": Decimal("0.0001"), "ETH": Decimal("0.001"), "BNB": Decimal("0.01")}
# Only what the matching engine implements, so ccxt refuses stop/iceberg orders before sending them.
ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET"]
# Features a venue's exchangeInfo may allow that the simulator has no endpoint or order parameter for.
_UNSUPPORTED_FLAGS = (
    "icebergAllowed",
    "ocoAllowed",
    "otoAllowed",
    "opoAllowed",
    "allowTrailingStop",
    "cancelReplaceAllowed",
    "amendAllowed",
    "pegInstructionsAllowed",
)


@dataclass(frozen=True)
class SymbolSpec:
    """Static description of one symbol and its filters."""

    symbol: str
    base: str
    quote: str
    start_price: Decimal
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    mult_up: Decimal = Decimal("5")
    mult_down: Decimal = Decimal("0.2")
    max_num_orders: int = 200
    max_num_algo_orders: int = 5
    min_price: Decimal = field(default=Decimal("0"))
    max_price: Decimal = field(default=Decimal("0"))
    # Copied from a real venue (`from_exchange_info`); the defaults keep the synthetic behaviour.
    ask_mult_up: Decimal | None = None
    ask_mult_down: Decimal | None = None
    apply_min_to_market: bool = True
    apply_max_to_market: bool = False
    # The filters the percent-price and notional rules come from, named in their -1013 rejections.
    percent_filter: str = "PERCENT_PRICE_BY_SIDE"
    notional_filter: str = "NOTIONAL"
    info: Mapping[str, Any] | None = field(default=None, compare=False, hash=False, repr=False)

    def exchange_info(self) -> dict[str, object]:
        """The symbol object of ``GET /api/v3/exchangeInfo`` (the venue's own when copied from one)."""
        if self.info is not None:
            out = dict(self.info)
            # Only what the matching engine implements, in the venue's order.
            out["orderTypes"] = [t for t in self.info.get("orderTypes", ORDER_TYPES) if t in ORDER_TYPES]
            out.update({flag: False for flag in _UNSUPPORTED_FLAGS if flag in out})
            return out
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ORDER_TYPES,
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "opoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "pegInstructionsAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(self.min_price),
                    "maxPrice": fmt(self.max_price),
                    "tickSize": fmt(self.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(self.min_qty),
                    "maxQty": fmt(self.max_qty),
                    "stepSize": fmt(self.step_size),
                },
                {"filterType": "ICEBERG_PARTS", "limit": 100},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": fmt(Decimal(0)),
                    "maxQty": fmt(self.market_max_qty),
                    "stepSize": fmt(Decimal(0)),
                },
                {
                    "filterType": "TRAILING_DELTA",
                    "minTrailingAboveDelta": 10,
                    "maxTrailingAboveDelta": 2000,
                    "minTrailingBelowDelta": 10,
                    "maxTrailingBelowDelta": 2000,
                },
                {
                    "filterType": "PERCENT_PRICE_BY_SIDE",
                    "bidMultiplierUp": str(self.mult_up),
                    "bidMultiplierDown": str(self.mult_down),
                    "askMultiplierUp": str(self.mult_up),
                    "askMultiplierDown": str(self.mult_down),
                    "avgPriceMins": 5,
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt(self.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": fmt(self.max_notional),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": self.max_num_orders},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": self.max_num_algo_orders},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
        }

    @classmethod
    def from_exchange_info(cls, info: Mapping[str, Any], start_price: Decimal | None = None) -> SymbolSpec:
        """A symbol whose filters are a real venue's (``info`` is one ``exchangeInfo.symbols[]`` object).

        The filters the matching engine enforces (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, PERCENT_PRICE(_BY_SIDE),
        NOTIONAL or MIN_NOTIONAL, MAX_NUM_ORDERS, MAX_NUM_ALGO_ORDERS) are read; ``exchange_info()`` then serves
        ``info`` itself, so clients see exactly the venue's filters. A missing filter disables its rule.
        """
        return _from_exchange_info(info, start_price)

    def check_price(self, price: Decimal, side: str, ref_price: Decimal) -> None:
        """PRICE_FILTER and PERCENT_PRICE(_BY_SIDE); raises -1013. The tick grid starts at ``minPrice``."""
        if (
            price <= 0
            or (self.min_price and price < self.min_price)
            or (self.max_price and price > self.max_price)
            or (price - self.min_price) % self.tick_size != 0
        ):
            raise _filter("PRICE_FILTER")
        up, down = self.mult_up, self.mult_down
        if side == "SELL" and self.ask_mult_up is not None and self.ask_mult_down is not None:
            up, down = self.ask_mult_up, self.ask_mult_down
        if ref_price > 0 and up > 0 and not (ref_price * down <= price <= ref_price * up):
            raise _filter(self.percent_filter)

    def check_qty(self, qty: Decimal, market: bool) -> None:
        """LOT_SIZE (and MARKET_LOT_SIZE for market orders); raises -1013. The step grid starts at ``minQty``."""
        if qty < self.min_qty or (self.max_qty and qty > self.max_qty) or (qty - self.min_qty) % self.step_size != 0:
            raise _filter("LOT_SIZE")
        if market and self.market_max_qty and qty > self.market_max_qty:
            raise _filter("MARKET_LOT_SIZE")

    def check_notional(self, notional: Decimal, market: bool) -> None:
        """NOTIONAL or MIN_NOTIONAL (by default the max applies to limit orders only: ``applyMaxToMarket`` false)."""
        too_small = notional < self.min_notional and (not market or self.apply_min_to_market)
        too_big = bool(self.max_notional) and notional > self.max_notional and (not market or self.apply_max_to_market)
        if too_small or too_big:
            raise _filter(self.notional_filter)

    def floor_step(self, qty: Decimal) -> Decimal:
        """Truncate a quantity to the lot step."""
        return (qty // self.step_size) * self.step_size

    def round_tick(self, price: Decimal) -> Decimal:
        """Round a price to the nearest tick (never below one tick)."""
        ticks = (price / self.tick_size).to_integral_value()
        return max(ticks, Decimal(1)) * self.tick_size


def _filter(name: str) -> SimError:
    return SimError(400, -1013, f"Filter failure: {name}")


def _split(symbol: str) -> tuple[str, str]:
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"cannot split symbol {symbol!r} into base and quote")


def _pow10(exp: int) -> Decimal:
    return Decimal(1).scaleb(exp)


def make_symbol_spec(symbol: str, start_price: Decimal | None = None) -> SymbolSpec:
    """Build a symbol with realistic filters derived from its price magnitude.

    BTCUSDT gets Binance's own filters (tick 0.01, step 0.00001, min notional 5).
    """
    base, quote = _split(symbol)
    price = start_price if start_price is not None else _DEFAULT_PRICES.get(symbol, Decimal("1"))
    if price <= 0:
        raise ValueError(f"start price of {symbol} must be positive")
    magnitude = price.adjusted()  # floor(log10(price))
    usd_magnitude = (price * _QUOTE_USD.get(quote, Decimal(1))).adjusted()
    tick = min(max(_pow10(magnitude - 5), _pow10(-8)), Decimal("0.01"))
    step = min(max(_pow10(-usd_magnitude - 1), _pow10(-8)), Decimal(1))
    size_scale = _pow10(max(0, -usd_magnitude))
    quote_min = _QUOTE_MIN_NOTIONAL.get(quote, Decimal(5))
    return SymbolSpec(
        symbol=symbol,
        base=base,
        quote=quote,
        start_price=price,
        tick_size=tick,
        step_size=step,
        min_qty=step,
        max_qty=Decimal(9000) * size_scale,
        market_max_qty=Decimal(100) * size_scale,
        min_notional=quote_min,
        max_notional=quote_min * Decimal(1800000),
        min_price=tick,
        max_price=_pow10(magnitude + 3),
    )


def _dec(f: Mapping[str, Any], key: str) -> Decimal:
    try:
        value = Decimal(str(f.get(key, "0")))
    except InvalidOperation:
        raise ValueError(f"{f.get('filterType')}.{key} is not a number: {f.get(key)!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{f.get('filterType')}.{key} must be a non-negative number")
    return value


def _from_exchange_info(info: Mapping[str, Any], start_price: Decimal | None = None) -> SymbolSpec:
    symbol = str(info.get("symbol") or "")
    base, quote = str(info.get("baseAsset") or ""), str(info.get("quoteAsset") or "")
    if not symbol or not base or not quote:
        raise ValueError("an exchangeInfo symbol needs symbol, baseAsset and quoteAsset")
    filters = {str(f.get("filterType")): f for f in info.get("filters", []) if isinstance(f, Mapping)}
    price_f, lot = filters.get("PRICE_FILTER", {}), filters.get("LOT_SIZE", {})
    market_lot = filters.get("MARKET_LOT_SIZE", {})
    tick = _dec(price_f, "tickSize") or Decimal("0.00000001")
    step = _dec(lot, "stepSize") or Decimal("0.00000001")
    kw: dict[str, Any] = {}
    if "PERCENT_PRICE_BY_SIDE" in filters:
        f = filters["PERCENT_PRICE_BY_SIDE"]
        kw |= {"mult_up": _dec(f, "bidMultiplierUp"), "mult_down": _dec(f, "bidMultiplierDown")}
        kw |= {"ask_mult_up": _dec(f, "askMultiplierUp"), "ask_mult_down": _dec(f, "askMultiplierDown")}
    elif "PERCENT_PRICE" in filters:
        f = filters["PERCENT_PRICE"]
        kw |= {"mult_up": _dec(f, "multiplierUp"), "mult_down": _dec(f, "multiplierDown")}
        kw["percent_filter"] = "PERCENT_PRICE"
    else:
        kw |= {"mult_up": Decimal(0), "mult_down": Decimal(0)}  # no percent-price rule on this symbol
    if "NOTIONAL" in filters:
        f = filters["NOTIONAL"]
        kw |= {"min_notional": _dec(f, "minNotional"), "max_notional": _dec(f, "maxNotional")}
        kw |= {"apply_min_to_market": bool(f.get("applyMinToMarket", True))}
        kw |= {"apply_max_to_market": bool(f.get("applyMaxToMarket", False))}
    elif "MIN_NOTIONAL" in filters:
        f = filters["MIN_NOTIONAL"]
        kw |= {"min_notional": _dec(f, "minNotional"), "max_notional": Decimal(0)}
        kw |= {"apply_min_to_market": bool(f.get("applyToMarket", True)), "notional_filter": "MIN_NOTIONAL"}
    else:
        kw |= {"min_notional": Decimal(0), "max_notional": Decimal(0)}
    if "MAX_NUM_ORDERS" in filters:
        kw["max_num_orders"] = int(filters["MAX_NUM_ORDERS"].get("maxNumOrders", 200))
    if "MAX_NUM_ALGO_ORDERS" in filters:
        kw["max_num_algo_orders"] = int(filters["MAX_NUM_ALGO_ORDERS"].get("maxNumAlgoOrders", 5))
    price = start_price if start_price is not None and start_price > 0 else max(_dec(price_f, "minPrice"), tick)
    return SymbolSpec(
        symbol=symbol,
        base=base,
        quote=quote,
        start_price=price,
        tick_size=tick,
        step_size=step,
        min_qty=_dec(lot, "minQty"),
        max_qty=_dec(lot, "maxQty"),
        market_max_qty=_dec(market_lot, "maxQty"),
        min_price=_dec(price_f, "minPrice"),
        max_price=_dec(price_f, "maxPrice"),
        info=dict(info),
        **kw,
    )
