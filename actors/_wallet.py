"""The root's status answers: the wallet (the account read every minute, valued in BTC for the
`wallet_below_minimum` check, and its balances) and the health of every part, for the control API and
metrics. A mixin of `RootActor` (its messages run on the root's thread)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from loguru import logger

from actors._state import survives
from engine.clock import Clock
from engine.domain import Pair, display_decimal, plain_decimal
from engine.exchange import AccountPosition, ExchangeError
from engine.execution import BTC_DISPLAY_PLACES, WalletValuation, value_wallet_in_btc
from engine.gateway import GatewayRequest, GatewayResult, Op

__all__ = ["AccountBook", "WalletMixin"]

_WALLET_READ_STALE_MS = 60_000
"""A wallet read (account, then prices) unanswered this long no longer holds the next one back."""
_API_ERRORS_PER_MINUTE = 20
"""Failed exchange calls within a minute that raise the `api_errors` alert."""


class AccountBook:
    """The account's balances as last known: the minute's REST snapshot with the stream's updates on top, ordered
    by the exchange's own account-update times (an `outboundAccountPosition`'s ``u``, the snapshot's
    ``updateTime``), never by arrival. A snapshot holds every change up to its ``updateTime``; a stream update
    newer than that wins over it, asset by asset, whichever arrives first. (A snapshot is answered after its prices
    are read: one taken before a fill could arrive after the fill's update and roll that asset back until the next
    read; and ordering by the engine's clock dropped updates stamped a clock offset behind it.) Pure."""

    def __init__(self) -> None:
        self.account: dict[str, Any] | None = None
        self.as_of_ms: int | None = None
        """When it last changed, on the engine's clock (`balances()`'s `as_of_ms`)."""
        self._snapshot_ms = 0
        self._asset_ms: dict[str, int] = {}
        """Per asset, the account-update time of the newest stream update applied over the snapshot."""

    def snapshot(self, account: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """A REST account read: the held rows of assets the stream updated after it replace its own; returns the
        account as now known (the valuation's input)."""
        taken = _ms(account.get("updateTime"))
        if taken is not None and taken < self._snapshot_ms and self.account is not None:
            return self.account  # older than the one held (reads are one at a time: not expected)
        if taken is None:  # no time to order by: the snapshot is taken as it is (never seen from Binance)
            self._asset_ms.clear()
            merged = account
        else:
            self._snapshot_ms = max(self._snapshot_ms, taken)
            self._asset_ms = {a: t for a, t in self._asset_ms.items() if t > self._snapshot_ms}
            held = {str(r.get("asset")): r for r in (self.account or {}).get("balances", ()) if isinstance(r, dict)}
            rows = {str(r.get("asset")): r for r in account.get("balances", ()) if isinstance(r, dict)}
            rows.update({asset: held[asset] for asset in self._asset_ms if asset in held})
            merged = {**account, "balances": list(rows.values())}
        self.account, self.as_of_ms = merged, now_ms
        return merged

    def position(self, position: AccountPosition, now_ms: int) -> list[str]:
        """A stream update: applies each asset not older than what is held (the snapshot, or a newer update of
        that asset); returns the assets applied."""
        if self.account is None:
            return []
        when = position.last_update_ms
        rows = {str(r.get("asset")): r for r in self.account.get("balances", ()) if isinstance(r, dict)}
        applied = []
        for entry in position.balances:
            if when < max(self._snapshot_ms, self._asset_ms.get(entry.asset, 0)):
                continue
            rows[entry.asset] = {"asset": entry.asset, "free": str(entry.free), "locked": str(entry.locked)}
            self._asset_ms[entry.asset] = when
            applied.append(entry.asset)
        if applied:
            self.account, self.as_of_ms = {**self.account, "balances": list(rows.values())}, now_ms
        return applied


def _ms(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class WalletMixin:
    """Wallet valuation and balances (see module docstring)."""

    gateway: Any
    _state: Any
    _clock: Clock
    _alerts: Callable[[str, str], None]
    _symbol_pairs: dict[str, Pair]
    _self: Any
    _balances: AccountBook
    _stream_health: dict[str, Any]
    _db_health: Any
    _s: Any
    _pairs: dict[Pair, Any]
    _restarts: int
    _recovery: Any
    _stopping: bool
    _failed_seen: int = 0
    _wallet_asked_ms: int | None = None
    """When the read under way (account, then prices) was asked; None when none is. A read older than
    `_WALLET_READ_STALE_MS` no longer holds the next one back (an answer that never came)."""
    _wallet_again: bool = False
    """A read was asked for while one was under way: one more follows it (what it read may predate the ask)."""

    _call: Callable[..., Any]
    """A blocking gateway call (the root's own `_call`)."""

    # ---- wallet -------------------------------------------------------------------------------------
    def _value_wallet_now(self) -> None:
        # At start the answer is awaited, so the first request already meets a known wallet value.
        try:
            account = self._call(Op.ACCOUNT)
            tickers = self._call(Op.TICKER_PRICE)
        except ExchangeError as exc:
            self._alerts("wallet", f"wallet value unknown ({type(exc).__name__}: {exc}); new orders refused")
            return
        self._set_wallet(account, tickers)

    @survives
    def refresh_wallet(self) -> None:
        """Re-value the wallet (on the timer): the account, then the prices, each answer a tell back here."""
        if self.gateway is None or self._stopping:  # a timer's tell queued behind shutdown sends nothing
            return
        now = self._clock.now_ms()
        if self._wallet_asked_ms is not None and now - self._wallet_asked_ms < _WALLET_READ_STALE_MS:
            # One read at a time: a flapping stream's gaps would each spend the account's weight (20) again. The
            # read under way may have read the account before this ask's gap: one more read follows it.
            logger.debug("wallet read under way (asked {} ms ago): one more follows it", now - self._wallet_asked_ms)
            self._wallet_again = True
            return
        self._wallet_asked_ms = now
        proxy = self._self
        self.gateway.submit(GatewayRequest(Op.ACCOUNT, {}, key="wallet", reply_to=proxy.on_wallet_account.defer))

    @survives
    def on_wallet_account(self, result: GatewayResult) -> None:
        """The account's balances arrived: fetch the prices to value them."""
        if self._stopping:  # queued behind the shutdown: nothing may be sent after the drain
            self._wallet_read_over()
            return
        if result.error is not None or self.gateway is None:
            logger.warning("wallet refresh failed: {}; keeping the last value", result.error)
            self._wallet_read_over()
            return
        proxy = self._self
        account = result.data
        self.gateway.submit(
            GatewayRequest(
                Op.TICKER_PRICE, {}, key="wallet", weight=4,
                reply_to=lambda r: proxy.on_wallet_prices.defer(account, r),
            )
        )  # fmt: skip

    @survives
    def on_wallet_prices(self, account: Any, result: GatewayResult) -> None:
        """The prices arrived: value the balances and publish the value to intake."""
        if result.error is not None:
            logger.warning("wallet prices failed: {}; keeping the last value", result.error)
        else:
            self._set_wallet(account, result.data)
        self._wallet_read_over()

    def _wallet_read_over(self) -> None:
        self._wallet_asked_ms = None
        if self._wallet_again:
            self._wallet_again = False
            self.refresh_wallet()

    def _set_wallet(self, account: Any, tickers: Any) -> None:
        if isinstance(account, dict):
            account = self._balances.snapshot(account, self._clock.now_ms())
        try:
            valuation = _valuation(account, tickers, self._symbol_pairs)
        except (KeyError, ValueError, ArithmeticError, AttributeError, TypeError) as exc:
            # An unreadable answer must not pass for a valuation: keep the last value and say so.
            self._alerts("wallet", f"account or price response unreadable ({exc!r}); keeping the last wallet value")
            return
        ctx = self._state.update(wallet_btc=valuation.total_btc)
        if valuation.total_btc < ctx.min_wallet_btc:
            logger.warning(
                "wallet worth {} BTC, below the minimum {} BTC: new orders are refused (unpriced: {})",
                display_decimal(valuation.total_btc, BTC_DISPLAY_PLACES),
                plain_decimal(ctx.min_wallet_btc),
                ", ".join(valuation.unpriced) or "none",
            )
        else:
            logger.debug("wallet worth {} BTC", display_decimal(valuation.total_btc, BTC_DISPLAY_PLACES))

    def health(self) -> dict[str, Any]:
        """Health of every part, for the control API and metrics (plain data, safe to serialize)."""
        ctx = self._state.intake()
        streams = {
            name: {"state": str(h.state), "reason": h.reason, "since_ms": h.since_ms, "reconnects": h.reconnects}
            for name, h in self._stream_health.items()
        }
        db = self._db_health
        gateway: dict[str, Any] = {}
        if self.gateway is not None:
            try:
                gateway = asdict(self.gateway.stats())
            except Exception as exc:  # noqa: BLE001 - health must answer even when the gateway does not
                gateway = {"error": f"{type(exc).__name__}: {exc}"}
        return {
            "halted": ctx.halted,
            "halt_reason": ctx.halt_reason,
            "paused": ctx.kill_switch,
            "shutting_down": ctx.shutting_down,
            "wallet_btc": None if ctx.wallet_btc is None else str(ctx.wallet_btc),
            "streams": streams if self._s.stream is not None else None,
            "database": {
                "health": str(db.health) if db is not None else "ok",
                "reason": db.reason if db is not None else "",
                "spooled": db.spooled if db is not None else 0,
                "accepting_orders": db.accepting_orders if db is not None else True,
            },
            "gateway": gateway,
            "pairs": {str(p): ref.is_alive() for p, ref in self._pairs.items()},
            "restarts": self._restarts,
            "recovery": self._recovery.as_dict() if self._recovery is not None else None,
        }

    @survives
    def check_api_errors(self) -> None:
        """Every minute: many failed exchange calls in the last minute are an operator's problem (alert)."""
        if self.gateway is None:
            return
        failed = int(getattr(self.gateway.stats(), "failed", 0))
        recent, self._failed_seen = failed - self._failed_seen, failed
        if recent >= _API_ERRORS_PER_MINUTE:
            self._alerts("api_errors", f"{recent} exchange calls failed in the last minute (see the errors table)")

    def balances(self) -> dict[str, Any]:
        """The last account balances read from the exchange (free and locked, exact decimal strings)."""
        rows = (self._balances.account or {}).get("balances", ())
        # Plain exact text ("0", "10.5"): the exchange's "0.00000000" or an applied balance's "0E-8" read as noise.
        out = {
            str(r["asset"]): {"free": _plain(r.get("free", "0")), "locked": _plain(r.get("locked", "0"))}
            for r in rows
            if isinstance(r, dict) and (Decimal(str(r.get("free", "0"))) + Decimal(str(r.get("locked", "0")))) > 0
        }
        ctx = self._state.intake()
        return {
            "balances": out,
            "as_of_ms": self._balances.as_of_ms,
            "wallet_btc": None if ctx.wallet_btc is None else str(ctx.wallet_btc),
        }


def _plain(value: object) -> str:
    return plain_decimal(Decimal(str(value)))


def _valuation(account: Any, tickers: Any, symbol_pairs: dict[str, Pair]) -> WalletValuation:
    """Binance's account balances (free + locked) valued through `ticker/price` rows."""
    balances: dict[str, Decimal] = {}
    for row in account.get("balances", ()) if isinstance(account, dict) else ():
        total = Decimal(str(row.get("free", "0"))) + Decimal(str(row.get("locked", "0")))
        if total > 0:
            balances[str(row["asset"])] = total
    prices: dict[Pair, Decimal] = {}
    for row in tickers if isinstance(tickers, list) else ():
        pair = symbol_pairs.get(str(row.get("symbol")))
        if pair is not None:
            prices[pair] = Decimal(str(row["price"]))
    return value_wallet_in_btc(balances, prices)
