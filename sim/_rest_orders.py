"""The signed REST handlers (orders, trades, account) and ``Ctx``, the request as every REST handler sees it.

``TradingHandlers`` is a mixin of ``sim._rest.RestApi``, which routes, authenticates and frames the requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sim._accounts import Account
from sim._core import SimCore
from sim._errors import SimError, fmt
from sim._params import opt_int, req

__all__ = ["Ctx", "TradingHandlers"]

_MY_TRADES_COMBINATIONS = frozenset(
    frozenset(c)
    for c in ((), ("orderId",), ("startTime",), ("endTime",), ("fromId",), ("startTime", "endTime"),
              ("orderId", "fromId"))
)  # fmt: skip
"""The optional parameters `GET /api/v3/myTrades` accepts together (binance-spot.md)."""


@dataclass
class Ctx:
    """One request as the handlers see it."""

    params: dict[str, str]
    account: Account | None
    now: int
    lag_ms: int
    headers: dict[str, str]
    lag_lookups: int = 0

    @property
    def acct(self) -> Account:
        """The authenticated account (signed endpoints only)."""
        assert self.account is not None
        return self.account


class TradingHandlers:
    """``RestApi``'s handlers of the signed trading and account endpoints (the mixin needs ``core``)."""

    core: SimCore

    # ------------------------------------------------------------------ trading
    def new_order(self, c: Ctx) -> object:
        core, acct = self.core, c.acct
        core.limiter.check_order(acct.name, c.now)
        res = core.exchange.place_order(acct, c.params, c.now)
        order = res.order
        if c.lag_ms:
            order.visible_from = c.now + c.lag_ms
        order.hidden_lookups = c.lag_lookups
        core.limiter.count_order(acct.name, order.serial, c.now)  # unique over symbols
        if order.executed_qty > 0:
            core.limiter.order_filled(acct.name, order.serial, c.now)
        c10, c1d = core.limiter.order_counts(acct.name, c.now)
        c.headers["X-MBX-ORDER-COUNT-10S"] = str(c10)
        c.headers["X-MBX-ORDER-COUNT-1D"] = str(c1d)
        return order.new_order_json(res.resp_type, res.fills)

    def test_order(self, c: Ctx) -> object:
        acct = c.acct
        self.core.exchange.place_order(acct, c.params, c.now, test=True)
        if c.params.get("computeCommissionRates") == "true":
            maker, taker = fmt(acct.spec.maker_commission), fmt(acct.spec.taker_commission)
            zero = fmt(Decimal(0))
            return {
                "standardCommissionForOrder": {"maker": maker, "taker": taker},
                "specialCommissionForOrder": {"maker": zero, "taker": zero},
                "taxCommissionForOrder": {"maker": zero, "taker": zero},
                # Binance's example here gives the discount as the part taken off (0.25); account/commission's
                # gives the part charged (0.75). Each endpoint follows its own example.
                "discount": _discount(acct, fmt(acct.spec.bnb_discount)),
            }
        return {}

    def account_commission(self, c: Ctx) -> object:
        """``GET /api/v3/account/commission``: the symbol's rates and the BNB discount (``discount`` is the multiplier
        of the standard commission paid in BNB: 0.75 for a 25 % discount)."""
        s = c.acct.spec
        spec = self.core.exchange.spec(c.params.get("symbol"))
        zero = fmt(Decimal(0))
        none = {"maker": zero, "taker": zero, "buyer": zero, "seller": zero}
        return {
            "symbol": spec.symbol,
            "standardCommission": {
                "maker": fmt(s.maker_commission), "taker": fmt(s.taker_commission), "buyer": zero, "seller": zero,
            },
            "specialCommission": none,
            "taxCommission": none,
            "discount": _discount(c.acct, fmt(1 - s.bnb_discount)),
        }  # fmt: skip

    def get_order(self, c: Ctx) -> object:
        p = c.params
        spec = self.core.exchange.spec(p.get("symbol"))
        return self.core.exchange.find_order(
            c.acct, spec.symbol, opt_int(p, "orderId"), p.get("origClientOrderId"), c.now, cancel=False
        ).query_json()

    def cancel_order(self, c: Ctx) -> object:
        p, ex = c.params, self.core.exchange
        spec = ex.spec(p.get("symbol"))
        restriction = p.get("cancelRestrictions")
        if restriction:
            if restriction not in ("ONLY_NEW", "ONLY_PARTIALLY_FILLED"):
                raise SimError(400, -1145, "Invalid cancelRestrictions")
            order = ex.find_order(
                c.acct, spec.symbol, opt_int(p, "orderId"), p.get("origClientOrderId"), c.now, cancel=True
            )
            wanted = "NEW" if restriction == "ONLY_NEW" else "PARTIALLY_FILLED"
            if order.status != wanted:
                raise SimError(400, -2011, "Order was not canceled due to cancel restrictions.")
        return ex.cancel_order(
            c.acct, spec.symbol, opt_int(p, "orderId"), p.get("origClientOrderId"), p.get("newClientOrderId"), c.now
        )

    def open_orders(self, c: Ctx) -> object:
        sym = c.params.get("symbol") or None
        return [o.query_json() for o in self.core.exchange.open_orders(c.acct, sym, c.now)]

    def cancel_all(self, c: Ctx) -> object:
        return self.core.exchange.cancel_all(c.acct, req(c.params, "symbol"), c.now)

    def all_orders(self, c: Ctx) -> object:
        p, ex = c.params, self.core.exchange
        spec = ex.spec(p.get("symbol"))
        from_id = opt_int(p, "orderId")
        start, end = opt_int(p, "startTime"), opt_int(p, "endTime")
        limit = min(max(opt_int(p, "limit") or 500, 1), 1000)
        out = [
            o
            for o in ex.orders.values()
            if o.account == c.acct.name
            and o.symbol == spec.symbol
            and o.visible(c.now)
            and (from_id is None or o.order_id >= from_id)
            and (start is None or o.time >= start)
            and (end is None or o.time <= end)
        ]
        out.sort(key=lambda o: o.order_id)
        out = out[:limit] if from_id is not None or start is not None else out[-limit:]
        return [o.query_json() for o in out]

    def my_trades(self, c: Ctx) -> object:
        p, ex = c.params, self.core.exchange
        spec = ex.spec(p.get("symbol"))
        order_id, from_id = opt_int(p, "orderId"), opt_int(p, "fromId")
        start, end = opt_int(p, "startTime"), opt_int(p, "endTime")
        given = frozenset(k for k, v in (("orderId", order_id), ("fromId", from_id), ("startTime", start),
                                         ("endTime", end)) if v is not None)  # fmt: skip
        if given not in _MY_TRADES_COMBINATIONS:
            # binance-spot.md lists the supported combinations; the code of the refusal is not in it (-1128 is
            # Binance's "Combination of optional parameters invalid.").
            raise SimError(400, -1128, "Combination of optional parameters invalid.")
        if start is not None and end is not None and end - start > 86_400_000:
            raise SimError(400, -1127, "More than 24 hours between startTime and endTime.")
        limit = min(max(opt_int(p, "limit") or 500, 1), 1000)
        named = ex.order(spec.symbol, order_id) if order_id is not None else None
        if named is not None and named.account == c.acct.name and not named.looked_up(c.now):
            return []  # a request naming a hidden order spends one of its hidden lookups (`visibility_lag`)
        out = [
            t
            for t in ex.trades
            if t.account == c.acct.name
            and t.symbol == spec.symbol
            and ex.trade_visible(t, c.now)
            and (order_id is None or t.order_id == order_id)
            and (from_id is None or t.trade_id >= from_id)
            and (start is None or t.time >= start)
            and (end is None or t.time <= end)
        ]
        out = out[:limit] if (from_id is not None or start is not None) else out[-limit:]
        return [t.my_trade_json() for t in out]

    def account(self, c: Ctx) -> object:
        a = c.acct
        s = a.spec
        maker_bp = int(s.maker_commission * 10000)
        taker_bp = int(s.taker_commission * 10000)
        return {
            "makerCommission": maker_bp,
            "takerCommission": taker_bp,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": fmt(s.maker_commission),
                "taker": fmt(s.taker_commission),
                "buyer": fmt(Decimal(0)),
                "seller": fmt(Decimal(0)),
            },
            "canTrade": s.enable_spot_trading,
            "canWithdraw": s.enable_withdrawals,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": a.update_time,
            "accountType": "SPOT",
            "balances": a.balances_json(omit_zero=c.params.get("omitZeroBalances") == "true"),
            "permissions": ["SPOT"],
            "uid": 100000 + list(self.core.exchange.accounts).index(a.name),
        }

    def api_restrictions(self, c: Ctx) -> object:
        s = c.acct.spec
        return {
            "ipRestrict": s.ip_restrict,
            "createTime": 1700000000000,
            "enableReading": s.enable_reading,
            "enableWithdrawals": s.enable_withdrawals,
            "enableInternalTransfer": False,
            "enableMargin": False,
            "enableFutures": False,
            "permitsUniversalTransfer": False,
            "enableVanillaOptions": False,
            "enableFixApiTrade": False,
            "enableFixReadOnly": False,
            "enableSpotAndMarginTrading": s.enable_spot_trading,
            "enablePortfolioMarginTrading": False,
        }


def _discount(acct: Account, value: str) -> dict[str, object]:
    # Every simulated symbol takes the BNB discount; the account's own switch is `AccountSpec.bnb_fees`.
    enabled = acct.spec.bnb_fees
    return {"enabledForAccount": enabled, "enabledForSymbol": True, "discountAsset": "BNB", "discount": value}
