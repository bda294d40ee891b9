"""Risk checks before a request becomes an order, and wallet valuation in BTC. Pure.

`RiskManager` is a protocol so users can plug their own; `DefaultRiskManager` covers the usual limits (pair
whitelist, kill switch, max notional per order, max open orders per pair). `check_min_wallet` implements
`min_wallet_btc`: live orders only when the wallet is worth at least that much (invariant 5), and the same
for the dry-run wallet so paper trading behaves like live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from engine.domain import OrderRequest, Pair, display_decimal, plain_decimal

__all__ = [
    "BTC_DISPLAY_PLACES",
    "DEFAULT_MIN_WALLET_BTC",
    "Decision",
    "DefaultRiskManager",
    "RefusalReason",
    "RiskManager",
    "RiskSnapshot",
    "WalletValuation",
    "asset_price_in_btc",
    "check_min_wallet",
    "value_wallet_in_btc",
]

DEFAULT_MIN_WALLET_BTC = Decimal("0.0001")
BTC_DISPLAY_PLACES = 8
"""Decimal places a computed BTC value is shown with in a message (BTC's own precision, the satoshi)."""
_BRIDGES: tuple[str, ...] = ("USDT", "USDC", "FDUSD", "BUSD", "BNB", "ETH")


class RefusalReason(StrEnum):
    """Machine-readable reasons a request is refused before any order is sent."""

    RISK_LIMIT = "risk_limit"
    WALLET_BELOW_MINIMUM = "wallet_below_minimum"
    FILTER_FAILURE = "filter_failure"
    CONFLICT = "conflict"
    HALTED = "halted"
    PAIR_NOT_ALLOWED = "pair_not_allowed"


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed, or refused with a machine-readable `reason` and a human `detail`."""

    allowed: bool
    reason: RefusalReason | None = None
    detail: str = ""

    @classmethod
    def allow(cls) -> Decision:
        """An allowing decision."""
        return cls(True)

    @classmethod
    def refuse(cls, reason: RefusalReason, detail: str) -> Decision:
        """A refusing decision."""
        return cls(False, reason, detail)


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """What a risk check may look at, taken by the pair actor when the request arrives."""

    open_orders_by_pair: Mapping[Pair, int] = field(default_factory=dict)
    reference_price: Decimal | None = None
    """What the request is worth per unit, by the engine's valuation (never less than it may fill at: a buy's
    limit, the higher of a sell's limit and the bid, the book for a market order); None with no price at all."""
    halted: bool = False
    """The engine is in its safe halted state (restart budget exceeded, 418 ban, stop-trading error)."""


@runtime_checkable
class RiskManager(Protocol):
    """Decides whether a request may trade. Implementations must be pure and fast (called per request)."""

    def check_trade_allowed(self, request: OrderRequest, snapshot: RiskSnapshot) -> Decision:
        """Allow or refuse `request` given `snapshot`."""
        ...


@dataclass(frozen=True, slots=True)
class DefaultRiskManager:
    """Kill switch, pair whitelist, max notional per order (per quote asset) and max open orders per pair.

    Attributes:
        whitelist: pairs that may trade; None allows every pair.
        max_notional_per_order: quote asset → largest order value, e.g. {"USDT": Decimal("1000")}; a quote
            asset not listed is not limited.
        max_open_orders_per_pair: None for no limit.
        kill_switch: refuse everything.
    """

    whitelist: frozenset[Pair] | None = None
    max_notional_per_order: Mapping[str, Decimal] = field(default_factory=dict)
    max_open_orders_per_pair: int | None = None
    kill_switch: bool = False

    def check_trade_allowed(self, request: OrderRequest, snapshot: RiskSnapshot) -> Decision:
        """Allow or refuse `request`; the first failing rule gives the reason."""
        if self.kill_switch:
            return Decision.refuse(RefusalReason.HALTED, "kill switch is on")
        if snapshot.halted:
            return Decision.refuse(RefusalReason.HALTED, "engine is halted: no new orders")
        if self.whitelist is not None and request.pair not in self.whitelist:
            return Decision.refuse(RefusalReason.PAIR_NOT_ALLOWED, f"{request.pair} is not whitelisted")
        if self.max_open_orders_per_pair is not None:
            open_orders = snapshot.open_orders_by_pair.get(request.pair, 0)
            if open_orders >= self.max_open_orders_per_pair:
                return Decision.refuse(
                    RefusalReason.RISK_LIMIT,
                    f"{open_orders} open orders on {request.pair}, limit {self.max_open_orders_per_pair}",
                )
        quote = request.pair.split("/")[1]
        limit = self.max_notional_per_order.get(quote)
        if limit is not None:
            # The engine's valuation first: a sell's own limit understates it when the market is above it.
            price = snapshot.reference_price if snapshot.reference_price is not None else request.price
            if price is None:
                return Decision.refuse(RefusalReason.RISK_LIMIT, "no price to value the order against its limit")
            notional = request.amount * price
            if notional > limit:
                return Decision.refuse(
                    RefusalReason.RISK_LIMIT,
                    f"order value {plain_decimal(notional)} {quote} exceeds the limit {plain_decimal(limit)} {quote}",
                )
        return Decision.allow()


def _rate(base: str, quote: str, prices: Mapping[Pair, Decimal]) -> Decimal | None:
    """How many `quote` one `base` is worth, from a direct or an inverse pair."""
    if base == quote:
        return Decimal(1)
    direct = prices.get(Pair(f"{base}/{quote}"))
    if direct is not None and direct > 0:
        return direct
    inverse = prices.get(Pair(f"{quote}/{base}"))
    if inverse is not None and inverse > 0:
        return 1 / inverse
    return None


def asset_price_in_btc(
    asset: str, prices: Mapping[Pair, Decimal], bridges: tuple[str, ...] = _BRIDGES
) -> Decimal | None:
    """The BTC value of one unit of `asset`: directly, inversely, or through one bridge asset (USDT, …)."""
    direct = _rate(asset, "BTC", prices)
    if direct is not None:
        return direct
    for bridge in bridges:
        first = _rate(asset, bridge, prices)
        second = _rate(bridge, "BTC", prices) if first is not None else None
        if first is not None and second is not None:
            return first * second
    return None


@dataclass(frozen=True, slots=True)
class WalletValuation:
    """A wallet's value in BTC; assets without a usable price are listed, not guessed."""

    total_btc: Decimal
    by_asset: Mapping[str, Decimal]
    unpriced: tuple[str, ...]


def value_wallet_in_btc(
    balances: Mapping[str, Decimal], prices: Mapping[Pair, Decimal], bridges: tuple[str, ...] = _BRIDGES
) -> WalletValuation:
    """Value `balances` (asset → total amount) in BTC through the last prices of `prices` (pair → price)."""
    by_asset: dict[str, Decimal] = {}
    unpriced: list[str] = []
    for asset, amount in sorted(balances.items()):
        if amount <= 0:
            continue
        rate = asset_price_in_btc(asset, prices, bridges)
        if rate is None:
            unpriced.append(asset)
            continue
        by_asset[asset] = amount * rate
    return WalletValuation(sum(by_asset.values(), Decimal(0)), by_asset, tuple(unpriced))


def check_min_wallet(valuation: WalletValuation, min_wallet_btc: Decimal = DEFAULT_MIN_WALLET_BTC) -> Decision:
    """Refuse with `wallet_below_minimum` unless the wallet is worth at least `min_wallet_btc`."""
    if valuation.total_btc >= min_wallet_btc:
        return Decision.allow()
    # The valuation is computed (amount × rate, rates through a bridge, inverse pairs: 1/price) and may carry 28
    # digits: shown to the satoshi; the comparison above used the exact value.
    worth = display_decimal(valuation.total_btc, BTC_DISPLAY_PLACES)
    detail = f"wallet worth {worth} BTC, below the minimum {plain_decimal(min_wallet_btc)} BTC"
    if valuation.unpriced:
        detail += f" (no price for {', '.join(valuation.unpriced)})"
    return Decision.refuse(RefusalReason.WALLET_BELOW_MINIMUM, detail)
