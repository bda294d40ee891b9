"""A symbol's trading rules from exchangeInfo, and the pre-trade filter checks (binance-spot.md §3).

Checking before sending turns an exchange rejection (-1013, which Freqtrade once retried forever: "immortal
dust trade", #12322) into a clear refusal with the filter's name, and costs no request weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, InvalidOperation, localcontext
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.domain import Side, Symbol, plain_decimal

__all__ = ["PercentPrice", "SymbolRules", "Violation"]

_ZERO = Decimal(0)
_p = plain_decimal  # every number in a violation's text: exact, without the exchange's scale ("5", not "5.00000000")
_SIZE_FILTERS = frozenset({"LOT_SIZE", "MARKET_LOT_SIZE", "NOTIONAL", "MIN_NOTIONAL"})


@dataclass(frozen=True, slots=True)
class Violation:
    """A filter the order would fail, with a human-readable reason and the same facts for code (`details`)."""

    filter_name: str
    reason: str
    above_max: bool = False
    """The quantity or notional is above the filter's maximum: too big to send, not dust."""
    details: Mapping[str, str] = field(default_factory=dict, hash=False)  # a dict: still hashable by the rest
    """Exact plain decimals: `filter`, `field` (`amount`, `price`, `notional`; `status` for SYMBOL_STATUS), `value`
    (as checked), and the filter's bounds that apply — `min`, `max`, `step` (lot filters) or `tick` (PRICE_FILTER),
    `multiplier_up`/`multiplier_down` and `reference_price` (PERCENT_PRICE*), `amount`, `price` (the notional's
    factors) and `step` (the amount's lot step) for NOTIONAL/MIN_NOTIONAL. A zero bound is not enforced: left out."""

    def __str__(self) -> str:
        return f"{self.filter_name}: {self.reason}"

    @property
    def is_dust(self) -> bool:
        """Too small to send (below the step, minQty or minNotional). Too BIG is not dust but a filter
        failure: calling 119 unsent BTC "dust" would report the trade as filled."""
        return self.filter_name in _SIZE_FILTERS and not self.above_max


class PercentPrice(BaseModel):
    """PERCENT_PRICE(_BY_SIDE) multipliers around the average price (equal per side for PERCENT_PRICE)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    filter_name: str
    bid_up: Decimal
    bid_down: Decimal
    ask_up: Decimal
    ask_down: Decimal

    def bounds(self, side: Side, average: Decimal) -> tuple[Decimal, Decimal]:
        """(lowest, highest) price allowed for `side` around `average`."""
        if side is Side.BUY:
            return average * self.bid_down, average * self.bid_up
        return average * self.ask_down, average * self.ask_up


def _dec(data: Mapping[str, Any], key: str, default: Decimal | None = None) -> Decimal:
    value = data.get(key)
    if value is None:
        if default is None:
            raise ValueError(f"filter field {key!r} missing")
        return default
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"filter field {key!r} is not a decimal: {value!r}") from None
    if not out.is_finite() or out < 0:
        raise ValueError(f"filter field {key!r} must be finite and ≥ 0: {value!r}")
    return out


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    with localcontext(_GRID):  # exact: the default 28 digits rounded the quotient, and the floor could go up
        return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _ceil_to(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    with localcontext(_GRID):
        return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


_GRID = Context(prec=96)  # the widest value the domain admits (20 + 20 digits) over the finest step, with room


def _floor_on(value: Decimal, origin: Decimal, step: Decimal) -> Decimal:
    # Binance's lot grid starts at minQty ((quantity - minQty) % stepSize == 0, as `_on_grid` checks): floored from
    # 0, a minQty off the step's multiples gave a quantity the check then refused (2.7 → 2 with minQty 0.5, step 1).
    if origin > 0 and value >= origin:
        return origin + _floor_to(value - origin, step)
    return _floor_to(value, step)


def _on_grid(value: Decimal, origin: Decimal, step: Decimal) -> bool:
    return step <= 0 or (value - origin) % step == 0


def _violation(
    name: str, reason: str, what: str, value: Decimal | str, bounds: Mapping[str, Decimal] | None = None,
    *, above_max: bool = False,
) -> Violation:  # fmt: skip
    """A violation whose `details` say the same as its text: the filter, the field, its value, and the bounds
    given (a zero bound is not enforced: left out)."""
    details = {"filter": name, "field": what, "value": value if isinstance(value, str) else _p(value)}
    details |= {key: _p(bound) for key, bound in (bounds or {}).items() if bound != 0}
    return Violation(name, reason, above_max, details)


class SymbolRules(BaseModel):
    """The filters of one symbol. A zero bound or step means "not enforced", as in Binance's own data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: Symbol
    status: str = "TRADING"
    base_asset: str
    quote_asset: str
    order_types: frozenset[str] = frozenset({"LIMIT", "MARKET", "LIMIT_MAKER"})
    tick_size: Decimal = _ZERO
    min_price: Decimal = _ZERO
    max_price: Decimal = _ZERO
    step_size: Decimal = _ZERO
    min_qty: Decimal = _ZERO
    max_qty: Decimal = _ZERO
    market_step_size: Decimal = _ZERO
    market_min_qty: Decimal = _ZERO
    market_max_qty: Decimal = _ZERO
    min_notional: Decimal = _ZERO
    max_notional: Decimal = _ZERO
    min_notional_filter: str = "NOTIONAL"
    apply_min_to_market: bool = True
    apply_max_to_market: bool = False
    percent_price: PercentPrice | None = None

    @classmethod
    def from_exchange_info(cls, data: Mapping[str, Any]) -> SymbolRules:
        """Parse one element of exchangeInfo's `symbols`.

        Raises:
            ValueError: when a field the engine needs is missing or malformed.
        """
        try:
            fields: dict[str, Any] = {
                "symbol": Symbol(str(data["symbol"])),
                "status": str(data.get("status", "TRADING")),
                "base_asset": str(data["baseAsset"]),
                "quote_asset": str(data["quoteAsset"]),
            }
        except KeyError as exc:
            raise ValueError(f"exchangeInfo symbol lacks {exc}") from None
        if isinstance(data.get("orderTypes"), list):
            fields["order_types"] = frozenset(str(t) for t in data["orderTypes"])
        for f in data.get("filters") or []:
            kind = f.get("filterType") if isinstance(f, Mapping) else None
            if kind == "PRICE_FILTER":
                fields |= {"tick_size": _dec(f, "tickSize"), "min_price": _dec(f, "minPrice"),
                           "max_price": _dec(f, "maxPrice")}  # fmt: skip
            elif kind == "LOT_SIZE":
                fields |= {"step_size": _dec(f, "stepSize"), "min_qty": _dec(f, "minQty"),
                           "max_qty": _dec(f, "maxQty")}  # fmt: skip
            elif kind == "MARKET_LOT_SIZE":
                fields |= {"market_step_size": _dec(f, "stepSize"), "market_min_qty": _dec(f, "minQty"),
                           "market_max_qty": _dec(f, "maxQty")}  # fmt: skip
            elif kind == "NOTIONAL":
                fields |= {
                    "min_notional": _dec(f, "minNotional"),
                    "max_notional": _dec(f, "maxNotional", _ZERO),
                    "min_notional_filter": "NOTIONAL",
                    "apply_min_to_market": bool(f.get("applyMinToMarket", True)),
                    "apply_max_to_market": bool(f.get("applyMaxToMarket", False)),
                }
            elif kind == "MIN_NOTIONAL":
                fields |= {"min_notional": _dec(f, "minNotional"), "min_notional_filter": "MIN_NOTIONAL",
                           "apply_min_to_market": bool(f.get("applyToMarket", True))}  # fmt: skip
            elif kind == "PERCENT_PRICE_BY_SIDE":
                fields["percent_price"] = PercentPrice(
                    filter_name=kind, bid_up=_dec(f, "bidMultiplierUp"), bid_down=_dec(f, "bidMultiplierDown"),
                    ask_up=_dec(f, "askMultiplierUp"), ask_down=_dec(f, "askMultiplierDown"))  # fmt: skip
            elif kind == "PERCENT_PRICE" and "percent_price" not in fields:
                up, down = _dec(f, "multiplierUp"), _dec(f, "multiplierDown")
                fields["percent_price"] = PercentPrice(
                    filter_name=kind, bid_up=up, bid_down=down, ask_up=up, ask_down=down
                )
        return cls(**fields)

    @property
    def is_trading(self) -> bool:
        """True when the symbol accepts new orders."""
        return self.status == "TRADING"

    def round_price(self, price: Decimal, side: Side) -> Decimal:
        """Round to the tick on the side that never pays more (buy: down) or receives less (sell: up)."""
        origin = self.min_price if self.min_price > 0 else _ZERO
        if side is Side.BUY:
            return origin + _floor_to(price - origin, self.tick_size)
        return origin + _ceil_to(price - origin, self.tick_size)

    def floor_qty(self, qty: Decimal, *, market: bool = False) -> Decimal:
        """Round a quantity DOWN to the lot step (and the market lot step for market orders)."""
        out = _floor_on(qty, self.min_qty, self.step_size)
        if market:
            out = _floor_on(out, self.market_min_qty, self.market_step_size)
        return max(out, _ZERO)

    def min_tradable(self, price: Decimal, *, market: bool = False) -> Decimal:
        """The smallest quantity that passes the quantity and min-notional filters at `price`."""
        floor = max(self.min_qty, self.market_min_qty if market else _ZERO)
        if self.min_notional > 0 and price > 0 and (not market or self.apply_min_to_market):
            step = self.step_size if self.step_size > 0 else Decimal("1e-8")
            needed = self.min_notional / price
            origin = self.min_qty if 0 < self.min_qty <= needed else _ZERO  # on the lot grid (`_floor_on`)
            floor = max(floor, origin + _ceil_to(needed - origin, step))
        return floor

    def check(
        self, *, side: Side, quantity: Decimal, price: Decimal | None, reference_price: Decimal | None = None
    ) -> Violation | None:
        """The first filter a LIMIT (price given) or MARKET (price None) order would fail, or None.

        `reference_price` stands for Binance's average price: used for a market order's notional and for
        PERCENT_PRICE(_BY_SIDE); those checks are skipped when it is None.
        """
        if not self.is_trading:
            return _violation("SYMBOL_STATUS", f"{self.symbol} is {self.status}, not TRADING", "status", self.status)
        market = price is None
        if price is not None:
            bad = self._check_price(price)
            if bad is not None:
                return bad
        bad = self._check_lot("LOT_SIZE", quantity, self.min_qty, self.max_qty, self.step_size)
        if bad is None and market:
            bad = self._check_lot(
                "MARKET_LOT_SIZE", quantity, self.market_min_qty, self.market_max_qty, self.market_step_size
            )
        if bad is not None:
            return bad
        notional_price = reference_price if market else price
        if notional_price is not None:
            bad = self._check_notional(quantity, notional_price, market=market)
            if bad is not None:
                return bad
        if price is not None and reference_price is not None and self.percent_price is not None:
            pp = self.percent_price
            low, high = pp.bounds(side, reference_price)
            if (low > 0 and price < low) or (high > 0 and price > high):
                up, down = (pp.bid_up, pp.bid_down) if side is Side.BUY else (pp.ask_up, pp.ask_down)
                return _violation(
                    pp.filter_name, f"price {_p(price)} outside [{_p(low)}, {_p(high)}] around {_p(reference_price)}",
                    "price", price, {"min": low, "max": high, "multiplier_up": up, "multiplier_down": down,
                                     "reference_price": reference_price},
                )  # fmt: skip
        return None

    def check_market_fallback(self, quantity: Decimal) -> Violation | None:
        """MARKET_LOT_SIZE for a limit request whose fallback is a market order, checked at intake: an amount above
        maxQty (or all of it below minQty) could never go out as that fallback, whatever part the limit leaves —
        refused now, not after the limit's wait. The step is not checked: the fallback rounds down to it."""
        low, high = self.market_min_qty, self.market_max_qty
        bounds = {"min": low, "max": high, "step": self.market_step_size}
        if high > 0 and quantity > high:
            why = f"quantity {_p(quantity)} above maxQty {_p(high)}: its market fallback could not be sent"
            return _violation("MARKET_LOT_SIZE", why, "amount", quantity, bounds, above_max=True)
        if low > 0 and 0 < quantity < low:
            why = f"quantity {_p(quantity)} below minQty {_p(low)}: its market fallback could not be sent"
            return _violation("MARKET_LOT_SIZE", why, "amount", quantity, bounds)
        return None

    def _check_price(self, price: Decimal) -> Violation | None:
        bounds = {"min": self.min_price, "max": self.max_price, "tick": self.tick_size}
        if price <= 0:
            return _violation("PRICE_FILTER", f"price {_p(price)} must be > 0", "price", price, bounds)
        if self.min_price > 0 and price < self.min_price:
            why = f"price {_p(price)} below minPrice {_p(self.min_price)}"
            return _violation("PRICE_FILTER", why, "price", price, bounds)
        if self.max_price > 0 and price > self.max_price:
            why = f"price {_p(price)} above maxPrice {_p(self.max_price)}"
            return _violation("PRICE_FILTER", why, "price", price, bounds)
        if not _on_grid(price, self.min_price, self.tick_size):
            why = f"price {_p(price)} not a multiple of tickSize {_p(self.tick_size)}"
            return _violation("PRICE_FILTER", why, "price", price, bounds)
        return None

    def _check_notional(self, quantity: Decimal, price: Decimal, *, market: bool) -> Violation | None:
        # only the bounds that apply to this order: a market order may be exempt from either
        low = self.min_notional if not market or self.apply_min_to_market else _ZERO
        high = self.max_notional if not market or self.apply_max_to_market else _ZERO
        notional = price * quantity
        # the amount's factors, and the step it moves by (the market lot step for a market order, when enforced):
        # the smallest amount that passes is min ÷ price rounded up to it
        step = self.market_step_size if market and self.market_step_size > 0 else self.step_size
        facts = {"min": low, "max": high, "amount": quantity, "price": price, "step": step}
        if low > 0 and notional < low:
            why = f"notional {_p(notional)} below {_p(low)}"
            return _violation(self.min_notional_filter, why, "notional", notional, facts)
        if high > 0 and notional > high:
            why = f"notional {_p(notional)} above {_p(high)}"
            return _violation("NOTIONAL", why, "notional", notional, facts, above_max=True)
        return None

    @staticmethod
    def _check_lot(name: str, qty: Decimal, low: Decimal, high: Decimal, step: Decimal) -> Violation | None:
        bounds = {"min": low, "max": high, "step": step}
        if qty <= 0:  # the amount rounded down to the step is nothing
            why = f"amount below the lot step (stepSize {_p(step)}, minQty {_p(low)})"
            return _violation(name, why, "amount", qty, bounds)
        if low > 0 and qty < low:
            return _violation(name, f"quantity {_p(qty)} below minQty {_p(low)}", "amount", qty, bounds)
        if high > 0 and qty > high:
            why = f"quantity {_p(qty)} above maxQty {_p(high)}"
            return _violation(name, why, "amount", qty, bounds, above_max=True)
        if not _on_grid(qty, low, step):
            why = f"quantity {_p(qty)} not a multiple of stepSize {_p(step)}"
            return _violation(name, why, "amount", qty, bounds)
        return None
