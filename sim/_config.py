"""Simulator configuration: frozen pydantic models."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sim._auth import KeyVerifier, valid_key_format
from sim._symbols import SymbolSpec, make_symbol_spec

__all__ = ["BINANCE_US_LIMITS", "AccountSpec", "RateLimitConfig", "SimConfig"]

# Binance's lengths (an API key and an HMAC secret are 64 characters each), so the keys `run.py sim` prints pass the
# engine's check-config.
_HMAC_SECRET_CHARS = 64
_DEFAULT_HMAC_KEY = "simkey0000000000000000000000000000000000000000000000000000000001"
_DEFAULT_HMAC_SECRET = "simsecret0000000000000000000000000000000000000000000000000000001"


class AccountSpec(BaseModel):
    """One simulated account and its API key.

    Attributes:
        name: Ledger name of the account (unique).
        api_key: Value expected in ``X-MBX-APIKEY`` / the WS ``apiKey`` param.
        secret: HMAC secret (64 characters, as Binance's), or an RSA / Ed25519 PKCS#8 PEM private key; for PEM
            keys the simulator derives the public key and verifies signatures with it.
        balances: Starting balances per asset.
        enable_withdrawals: Reported by ``apiRestrictions`` and ``account.canWithdraw``.
        enable_reading / enable_spot_trading: Other ``apiRestrictions`` flags (trading off → -2015 on orders).
        maker_commission / taker_commission: Rates as fractions (0.001 = 0.1 %).
        bnb_fees: "Use BNB for fees": a fill's commission is charged in BNB (valued at ``SimConfig``'s BNB price
            source, less ``bnb_discount``) while the free BNB covers it, else in the asset received (sim._fees).
        bnb_discount: The BNB discount as a fraction of the standard commission (0.25: 75 % of it is charged).
    """

    # hide_input_in_errors: pydantic quotes a refused value in its error, and here it may be the secret.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = "main"
    api_key: str = _DEFAULT_HMAC_KEY
    secret: str = _DEFAULT_HMAC_SECRET
    balances: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "USDT": Decimal("100000"),
            "BTC": Decimal("2"),
            "ETH": Decimal("20"),
            "BNB": Decimal("50"),
        }
    )
    enable_withdrawals: bool = False
    enable_reading: bool = True
    enable_spot_trading: bool = True
    ip_restrict: bool = False
    maker_commission: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    taker_commission: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    bnb_fees: bool = False
    bnb_discount: Decimal = Field(default=Decimal("0.25"), ge=0, lt=1)

    @field_validator("api_key")
    @classmethod
    def _check_key(cls, api_key: str) -> str:
        if not valid_key_format(api_key):
            raise ValueError("api_key must be 1-128 ASCII letters and digits (Binance's key format)")
        return api_key

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, secret: str) -> str:
        if not secret:
            raise ValueError("secret must not be empty")
        try:
            kind = KeyVerifier(secret).kind
        except (ValueError, TypeError) as exc:
            # Never echo the secret itself.
            raise ValueError(
                f"secret is not a usable HMAC secret or RSA/Ed25519 PKCS#8 PEM key ({type(exc).__name__})"
            ) from None
        if kind == "HMAC" and len(secret) != _HMAC_SECRET_CHARS:
            # Any other length signs here but is refused by the engine's configuration (and by Binance); a PEM
            # key has its own length. The length only, never the secret.
            raise ValueError(f"an HMAC secret has exactly {_HMAC_SECRET_CHARS} characters, not {len(secret)}")
        return secret

    @field_validator("balances")
    @classmethod
    def _check_balances(cls, balances: dict[str, Decimal]) -> dict[str, Decimal]:
        for asset, amount in balances.items():
            if amount < 0:
                raise ValueError(f"balance of {asset} must not be negative")
        return balances


class RateLimitConfig(BaseModel):
    """Binance limits (defaults from binance-spot.md §5) and the ban policy.

    ``SimConfig(exchange_mode="binanceus")`` defaults the three published limits to Binance.US's instead
    (`BINANCE_US_LIMITS`, binance-spot.md §9.1); limits given explicitly are kept.

    Attributes:
        request_weight_per_minute: REQUEST_WEIGHT per IP, shared by REST and the WS API.
        orders_per_10s / orders_per_day: ORDERS (unfilled order count) per account.
        connection_attempts_per_5m: WebSocket connection attempts per IP per 5 minutes, counted separately for the
            WS API and for the streams (refused at the handshake with HTTP 429 beyond it).
        ban_after_violations: 429s tolerated (per IP) before the next one bans the IP (418).
        ban_seconds: The first ban's length; each further ban doubles, up to 3 days.
        enabled: False turns every limit off.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_weight_per_minute: int = 6000
    orders_per_10s: int = 50
    orders_per_day: int = 160000
    connection_attempts_per_5m: int = Field(default=300, ge=1)
    ban_after_violations: int = 3
    ban_seconds: int = 120
    enabled: bool = True


BINANCE_US_LIMITS: dict[str, int] = {"request_weight_per_minute": 1200, "orders_per_10s": 100, "orders_per_day": 200000}
"""Binance.US's published limits (binance-spot.md §9.1, a 2024 snapshot flagged as possibly stale)."""


class SimConfig(BaseModel):
    """Everything the simulator needs; the same config and request sequence give the same run.

    Attributes:
        seed: Seed of every random source (price paths, probabilistic faults).
        symbols: Exchange symbols (``BTCUSDT`` …); unknown pairs get filters derived from their start price.
        start_prices: Optional start price per symbol (overrides the built-in defaults).
        volatility: Per-tick standard deviation of log returns.
        drift: Per-tick drift of log returns.
        jump_probability / jump_size: Chance per tick of a jump and its log-return standard deviation.
        tick_volume_multiplier: Size of the synthetic trade volume per tick, in units of the top level size.
        depth_levels: Levels on each side of the synthetic book.
        accounts: Simulated accounts.
        rate_limits: Rate-limit windows (in ``binanceus`` mode, the limits not given default to Binance.US's).
        market_tick_interval_s: Background market mover period; 0 disables it (tests drive the market).
        exchange_mode: ``binance`` (WS API user data) or ``binanceus`` (REST listenKey flow).
        symbol_info: Optional ``exchangeInfo.symbols[]`` object per symbol, e.g. copied from a real venue: its
            filters are enforced and served instead of the synthetic ones.
        ids_from_clock: Order and trade ids (and generated client order ids) start from the clock at start, not
            from fixed numbers, so a simulator restarted on the same database never hands out ids an earlier run
            stored (the engine's embedded and paper simulators; tests keep the fixed, reproducible start).
        cross_fills: How resting orders fill when the price moves through them (a buy when the best ask is at or
            below its price, a sell when the best bid is at or above it), always at the order's own price:
            ``tick_volume`` shares the seeded synthetic volume of the tick (partial fills); ``full`` fills them
            completely, whatever the size; ``quote_size`` (paper trading on a real venue's bookTicker) fills them
            only up to the venue's quantity at its best opposite price (``set_quote``'s ``bid_qty`` / ``ask_qty``)
            not yet taken at that price: what orders here take of it is remembered until that price changes, a
            later quote at the same price with a larger quantity offers only the increase, and the crossed orders
            share it in price-time priority. A taker takes that quantity at the venue's best price first, then the
            synthetic levels behind it. A side whose quote came without a quantity fills as ``full``.
        bnb_prices: The price of one BNB per asset (``{"USDT": 600}``), for the quote assets of symbols whose fees
            an account with ``bnb_fees`` pays in BNB and that have no simulated ``BNB<asset>`` / ``<asset>BNB``
            book (whose mid is the price otherwise). An asset with such a book cannot also have a configured price.
        record_requests: Keep a log of every HTTP request received (method, path, query, whether it carried an
            API key or a signature), read with ``Control.requests()``; for tests that prove what reached a venue.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 42
    symbol_info: dict[str, dict[str, Any]] = Field(default_factory=dict)
    symbols: list[str] = Field(default_factory=lambda: ["BTCUSDT", "ETHUSDT", "ETHBTC"])
    start_prices: dict[str, Decimal] = Field(default_factory=dict)
    volatility: float = Field(default=0.0005, ge=0)  # float-ok: model parameter
    drift: float = 0.0  # float-ok
    jump_probability: float = Field(default=0.001, ge=0, le=1)  # float-ok
    jump_size: float = Field(default=0.02, ge=0)  # float-ok
    tick_volume_multiplier: float = Field(default=2.0, ge=0)  # float-ok
    depth_levels: int = Field(default=20, ge=1, le=5000)
    accounts: list[AccountSpec] = Field(default_factory=lambda: [AccountSpec()])
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)
    market_tick_interval_s: float = Field(default=0.0, ge=0)  # float-ok: seconds
    exchange_mode: Literal["binance", "binanceus"] = "binance"
    cross_fills: Literal["tick_volume", "full", "quote_size"] = "tick_volume"
    ids_from_clock: bool = False
    record_requests: bool = False
    bnb_prices: dict[str, Decimal] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _venue_limits(cls, data: Any) -> Any:
        # Binance.US publishes other limits than binance.com: those not given explicitly default to its own.
        if not isinstance(data, dict) or data.get("exchange_mode") != "binanceus":
            return data
        given = data.get("rate_limits")
        if given is None:
            return {**data, "rate_limits": RateLimitConfig(**BINANCE_US_LIMITS)}
        if isinstance(given, RateLimitConfig):
            unset = {k: v for k, v in BINANCE_US_LIMITS.items() if k not in given.model_fields_set}
            return {**data, "rate_limits": given.model_copy(update=unset)}
        if isinstance(given, dict):
            return {**data, "rate_limits": {**BINANCE_US_LIMITS, **given}}
        return data

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, symbols: list[str], info: ValidationInfo) -> list[str]:
        if not symbols:
            raise ValueError("at least one symbol is required")
        out = [s.upper() for s in symbols]
        if len(set(out)) != len(out):
            raise ValueError(f"duplicate symbols in {symbols}")
        given = info.data.get("symbol_info") or {}
        for sym in out:
            if sym in given:
                SymbolSpec.from_exchange_info(given[sym])  # raises ValueError naming the bad filter field
            else:
                make_symbol_spec(sym)  # raises ValueError with the reason for an unknown quote asset
        return out

    @model_validator(mode="after")
    def _check_accounts(self) -> SimConfig:
        if not self.accounts:
            raise ValueError("at least one account is required")
        names = [a.name for a in self.accounts]
        keys = [a.api_key for a in self.accounts]
        if len(set(names)) != len(names) or len(set(keys)) != len(keys):
            raise ValueError("account names and API keys must be unique")
        for sym, price in self.start_prices.items():
            if sym not in self.symbols or price <= 0:
                raise ValueError(f"start price for {sym}: symbol must be configured and the price positive")
        self._check_bnb_prices()
        for sym, entry in self.symbol_info.items():
            if sym not in self.symbols or entry.get("symbol") != sym:
                raise ValueError(f"symbol_info for {sym}: the symbol must be configured and the entry's own symbol")
        return self

    def _check_bnb_prices(self) -> None:
        for asset, price in self.bnb_prices.items():
            if price <= 0:
                raise ValueError(f"bnb_prices[{asset}] must be positive")
            if asset == "BNB":
                raise ValueError("bnb_prices['BNB']: one BNB is worth 1 BNB, it takes no price")
            books = [s for s in (f"BNB{asset}", f"{asset}BNB") if s in self.symbols]
            if books:
                raise ValueError(f"bnb_prices[{asset}]: {books[0]} is simulated, its book gives the price of BNB")
        if not any(a.bnb_fees for a in self.accounts):
            return
        for sym in self.symbols:
            info = self.symbol_info.get(sym)
            spec = SymbolSpec.from_exchange_info(info) if info is not None else make_symbol_spec(sym)
            quote = spec.quote
            if "BNB" in (spec.base, quote) or quote in self.bnb_prices:
                continue
            if f"BNB{quote}" not in self.symbols and f"{quote}BNB" not in self.symbols:
                raise ValueError(
                    f"an account pays fees in BNB but {sym}'s quote {quote} has no BNB price: simulate BNB{quote} or "
                    f"set bnb_prices[{quote!r}]"
                )
