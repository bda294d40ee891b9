"""Commissions of a fill: in the asset received, or in BNB at a discount (pure).

Binance charges a fill's commission in the asset the fill brings in (the base for a buy, the quote for a sell).
An account with "use BNB for fees" on and enough free BNB pays it in BNB instead, at a discount, and then receives
the whole amount it traded for. binance-spot.md names the wire fields (``commission`` / ``commissionAsset`` in order
fills and myTrades, executionReport ``n`` / ``N``) but says nothing of how BNB pays; what follows is the simulator's
reading of Binance's published behaviour, and every choice the reference leaves open is written down here:

* The fee's value is the trade's quote amount times the rate (maker or taker) times ``1 - bnb_discount``: for a buy
  that is the base fee (``qty * rate``) valued at the trade's own price.
* That value is turned into BNB at the price of one BNB in the quote asset: the trade's own price on a BNB-base
  symbol (``BNBUSDT``), 1 on a BNB-quote symbol (``ETHBNB``), else the mid of the simulated ``BNB<quote>`` (or
  ``<quote>BNB``) book at the fill, else the configured ``SimConfig.bnb_prices[quote]``.
* Rounded half-up to 8 decimals, like the standard commission (``base``/``quoteCommissionPrecision`` are 8).
* "Enough BNB" means the free BNB after the fill's own debit covers the whole fee: BNB never pays part of one fee.
  BNB locked in orders is not used. When the fill brings BNB in (a buy of ``BNBUSDT``, a sell of ``ETHBNB``) the
  fee is taken from it at the discounted rate, so BNB always suffices there.
* Otherwise (BNB short, or no BNB price for the quote) the fill pays the standard commission in the asset received.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sim._market import SymbolMarket
from sim._symbols import SymbolSpec

__all__ = ["BNB", "Fee", "bnb_price", "fill_fee"]

BNB = "BNB"
_EIGHT = Decimal("0.00000001")


@dataclass(frozen=True)
class Fee:
    """A fill's commission: ``amount`` of ``asset``; ``received`` is the asset the fill brings in."""

    amount: Decimal
    asset: str
    received: str

    @property
    def in_bnb_instead(self) -> bool:
        """True when BNB pays a fee the received asset would otherwise have paid (BNB is debited on its own)."""
        return self.asset != self.received


def bnb_price(asset: str, markets: Mapping[str, SymbolMarket], configured: Mapping[str, Decimal]) -> Decimal | None:
    """The price of one BNB in ``asset``: a simulated book's mid, else the configured price, else None."""
    if asset == BNB:
        return Decimal(1)
    direct = markets.get(BNB + asset)
    if direct is not None and direct.mid > 0:
        return direct.mid
    inverse = markets.get(asset + BNB)
    if inverse is not None and inverse.mid > 0:
        return 1 / inverse.mid
    return configured.get(asset)


def fill_fee(
    spec: SymbolSpec,
    *,
    buy: bool,
    price: Decimal,
    qty: Decimal,
    rate: Decimal,
    bnb_discount: Decimal | None,
    bnb_per_quote: Decimal | None,
    free_bnb: Decimal,
) -> Fee:
    """The commission of one fill of ``qty`` at ``price``.

    ``bnb_discount`` None: the account does not pay fees with BNB. ``bnb_per_quote``: the price of one BNB in the
    quote asset (None: unknown). ``free_bnb``: the account's free BNB once the fill's own debit is taken.
    """
    quote_qty = price * qty
    received = spec.base if buy else spec.quote
    if bnb_discount is not None:
        value = quote_qty * rate * (1 - bnb_discount)  # in the quote asset
        if spec.base == BNB:
            in_bnb: Decimal | None = qty * rate * (1 - bnb_discount)
        elif bnb_per_quote is not None and bnb_per_quote > 0:
            in_bnb = value / bnb_per_quote
        else:
            in_bnb = None
        if in_bnb is not None:
            amount = in_bnb.quantize(_EIGHT, ROUND_HALF_UP)
            if received == BNB or amount <= free_bnb:
                return Fee(amount, BNB, received)
    standard = (qty if buy else quote_qty) * rate
    return Fee(standard.quantize(_EIGHT, ROUND_HALF_UP), received, received)
