"""The exchange's state and settlement: ``Ledger``, the base class of ``sim._exchange.Exchange``.

It holds accounts, symbols, orders and trades, settles fills (balances, commissions) and emits execution
reports, account positions and market trades to the outbox; pure like the exchange (time is passed in).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

from sim._accounts import Account
from sim._config import SimConfig
from sim._errors import SimError, bad_param, fmt
from sim._fees import BNB, Fee, bnb_price, fill_fee
from sim._market import SymbolMarket
from sim._orders import Order, Trade
from sim._price import PriceSource, RandomWalkPriceSource
from sim._symbols import SymbolSpec, make_symbol_spec

__all__ = ["SYMBOL_STATUSES", "ZERO", "Ledger", "OutEvent"]

ZERO = Decimal(0)
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# exchangeInfo's symbol statuses (binance-spot.md §1.4, §11): only TRADING takes new orders; all allow cancels.
SYMBOL_STATUSES = ("TRADING", "END_OF_DAY", "HALT", "BREAK", "CANCEL_ONLY")

# ("user", account name, event) or ("market", stream name, payload)
OutEvent = tuple[str, str, dict[str, object]]


class Ledger:
    """State and settlement of the exchange: ids, balances, fills, and the events they emit to ``outbox``."""

    def __init__(self, config: SimConfig, price_source: PriceSource | None = None) -> None:
        self.config = config
        self.price_source: PriceSource = price_source or RandomWalkPriceSource(
            config.seed, config.volatility, config.drift, config.jump_probability, config.jump_size
        )
        self.specs: dict[str, SymbolSpec] = {}
        self.markets: dict[str, SymbolMarket] = {}
        for sym in config.symbols:
            info = config.symbol_info.get(sym)
            if info is not None:
                spec = SymbolSpec.from_exchange_info(info, config.start_prices.get(sym))
            else:
                spec = make_symbol_spec(sym, config.start_prices.get(sym))
            self.specs[sym] = spec
            self.markets[sym] = SymbolMarket(
                spec=spec,
                levels=config.depth_levels,
                volume_mult=config.tick_volume_multiplier,
                rng=random.Random(f"{config.seed}:volume:{sym}"),
            )
        # Each symbol's status (the venue's when copied from one); ``info_version`` counts changes to exchangeInfo.
        self.status: dict[str, str] = {
            s: str((sp.info or {}).get("status") or "TRADING") for s, sp in self.specs.items()
        }
        self.info_version = 0
        self.accounts: dict[str, Account] = {a.name: Account.from_spec(a) for a in config.accounts}
        # Binance numbers orders and trades per symbol: two symbols have orders (trades) with the same id.
        self.orders: dict[tuple[str, int], Order] = {}
        self.open_by_symbol: dict[str, dict[int, Order]] = {s: {} for s in self.specs}
        self._by_cid: dict[tuple[str, str, str], Order] = {}
        self.trades: list[Trade] = []
        self.outbox: list[OutEvent] = []
        self.market_subs: set[str] = set()
        # Accounts with a user-data subscriber; None = emit every user event (pure use and tests).
        self.listening: set[str] | None = None
        self.on_first_fill: Callable[[str, int, int], None] | None = None
        # Every symbol starts at the same ids, so ids of different symbols collide from the first order on.
        self._next_order_id = dict.fromkeys(self.specs, 1000)
        self._next_trade_id = dict.fromkeys(self.specs, 5000)
        self._next_serial = 0  # the simulator's own number of an order over all symbols (never on the wire)
        self._next_prevented_id = 0  # self-trade prevention: `v` (prevented match id) of executionReport
        self._next_exec_id = 1
        self._id_rng = random.Random(f"{config.seed}:ids")

    def start_ids_at(self, now_ms: int) -> None:
        """Number every symbol's orders and trades from `now_ms` on, and draw client ids from a stream of that start:
        ids a run hands out never repeat those of an earlier run (Binance's own only ever grow, per symbol)."""
        for sym in self.specs:
            self._next_order_id[sym] = max(self._next_order_id[sym], now_ms)
            self._next_trade_id[sym] = max(self._next_trade_id[sym], now_ms)
        self._id_rng = random.Random(f"{self.config.seed}:ids:{now_ms}")

    # ------------------------------------------------------------------ helpers
    def spec(self, symbol: str | None) -> SymbolSpec:
        """The spec of ``symbol``; -1102 if missing, -1121 if unknown."""
        if not symbol:
            raise bad_param("symbol")
        spec = self.specs.get(symbol)
        if spec is None:
            raise SimError(400, -1121, "Invalid symbol.")
        return spec

    def order(self, symbol: str, order_id: int) -> Order | None:
        """The order ``order_id`` of ``symbol``, if any (order ids are per symbol)."""
        return self.orders.get((symbol, order_id))

    def _new_order_id(self, symbol: str) -> int:
        self._next_order_id[symbol] += 1
        self._next_serial += 1
        return self._next_order_id[symbol]

    def _new_trade_id(self, symbol: str) -> int:
        self._next_trade_id[symbol] += 1
        return self._next_trade_id[symbol]

    def trade_visible(self, trade: Trade, now: int) -> bool:
        """True once REST shows ``trade`` in myTrades: its order is no longer hidden by a ``visibility_lag``."""
        order = self.order(trade.symbol, trade.order_id)
        return order is None or order.visible(now)

    def new_client_id(self) -> str:
        """A Binance-style generated client order id (deterministic from the seed)."""
        return "web_" + "".join(self._id_rng.choice(_ID_CHARS) for _ in range(22))

    def _exec_id(self) -> int:
        self._next_exec_id += 1
        return self._next_exec_id

    def _report(self, order: Order, exec_type: str, now: int, trade: Trade | None = None, **kw: str) -> None:
        exec_id = self._exec_id()
        if self.listening is not None and order.account not in self.listening:
            return  # nobody subscribed: skip building the event (the execution id still advances)
        ev = order.execution_report(exec_type, now, exec_id, trade, kw.get("cancel_client_id"))
        self.outbox.append(("user", order.account, ev))

    def _position(self, account: Account, now: int) -> None:
        if self.listening is not None and account.name not in self.listening:
            if account.touched:
                account.touched.clear()
                account.update_time = now
            return
        ev = account.position_event(now)
        if ev is not None:
            self.outbox.append(("user", account.name, ev))

    # ------------------------------------------------------------------ settlement
    def _release(self, order: Order, account: Account) -> None:
        if order.locked > 0:
            account.unlock(order.lock_asset, order.locked)
            order.locked = ZERO

    def _expire(self, order: Order, account: Account, now: int) -> None:
        order.status = "EXPIRED"
        order.update_time = now
        self._release(order, account)
        self.open_by_symbol[order.symbol].pop(order.order_id, None)
        self._report(order, "EXPIRED", now)

    def amend_quantity(self, order: Order, account: Account, quantity: Decimal, new_cid: str | None, now: int) -> None:
        """Order amend keep priority (binance-spot.md §7: `x=REPLACED`): reduce a live order's quantity in place,
        under a new client order id (a generated one unless `new_cid`); the order keeps its id and its place.

        Raises:
            SimError: -2038 for an order not open, or a quantity not below the order's and above what executed;
                -1013 off the LOT_SIZE grid; -2010 for a new id another open order of the account holds.
        """
        if not order.is_open or not order.executed_qty < quantity < order.orig_qty:
            raise SimError(400, -2038, "Order amend (quantity increase or no change) is not supported.")
        self.specs[order.symbol].check_qty(quantity, market=False)
        holder = self._by_cid.get((account.name, order.symbol, new_cid)) if new_cid else None
        if holder is not None and holder is not order and holder.is_open:
            raise SimError(400, -2010, "Duplicate order sent.")
        if order.locked > 0:  # what the removed quantity held is free again
            release = order.locked * (order.orig_qty - quantity) / (order.orig_qty - order.executed_qty)
            account.unlock(order.lock_asset, release)
            order.locked -= release
        old_cid = order.client_order_id
        self._by_cid.pop((account.name, order.symbol, old_cid), None)
        order.orig_qty, order.client_order_id, order.update_time = quantity, new_cid or self.new_client_id(), now
        self._by_cid[(account.name, order.symbol, order.client_order_id)] = order
        exec_id = self._exec_id()
        if self.listening is None or order.account in self.listening:
            self.outbox.append(
                ("user", order.account, order.execution_report("REPLACED", now, exec_id) | {"C": old_cid})
            )
        self._position(account, now)

    def _fill(
        self,
        order: Order,
        account: Account,
        market: SymbolMarket,
        price: Decimal,
        qty: Decimal,
        *,
        maker: bool,
        now: int,
        trade_id: int | None = None,
        public: bool = True,
    ) -> Trade:
        """Settle one execution of `order`. Two user orders that trade settle one trade: both calls get its
        `trade_id`, and only one (`public`) prints it to the market (volume, last price, trade stream)."""
        spec = market.spec
        quote_qty = price * qty
        rate = account.spec.maker_commission if maker else account.spec.taker_commission
        if order.side == "BUY":
            if order.locked > 0:
                reserved = order.price * qty
                account.spend_locked(spec.quote, reserved)
                order.locked -= reserved
                if reserved > quote_qty:
                    account.credit(spec.quote, reserved - quote_qty)
            else:
                account.spend_free(spec.quote, quote_qty)
        else:
            if order.locked > 0:
                account.spend_locked(spec.base, qty)
                order.locked -= qty
            else:
                account.spend_free(spec.base, qty)
        fee = self._fee(account, spec, order.side == "BUY", price, qty, rate)
        commission, asset = fee.amount, fee.asset
        got = qty if order.side == "BUY" else quote_qty
        if fee.in_bnb_instead:
            account.credit(fee.received, got)  # the whole amount: BNB pays the fee
            account.spend_free(BNB, commission)
        else:
            account.credit(fee.received, got - commission)
        first = order.executed_qty == 0
        order.executed_qty += qty
        order.cum_quote += quote_qty
        order.update_time = now
        order.status = "FILLED" if order.executed_qty == order.orig_qty else "PARTIALLY_FILLED"
        if trade_id is None:
            trade_id = self._new_trade_id(spec.symbol)
        trade = Trade(
            symbol=spec.symbol,
            trade_id=trade_id,
            order_id=order.order_id,
            account=account.name,
            price=price,
            qty=qty,
            quote_qty=quote_qty,
            commission=commission,
            commission_asset=asset,
            time=now,
            is_buyer=order.side == "BUY",
            is_maker=maker,
        )
        self.trades.append(trade)
        if public:
            market.record_trade(trade.trade_id, price, qty)
        if order.status == "FILLED":
            self._release(order, account)
            self.open_by_symbol[order.symbol].pop(order.order_id, None)
        self._report(order, "TRADE", now, trade)
        if public:
            self._market_trade(spec.symbol, trade.trade_id, price, qty, now, buyer_maker=maker == trade.is_buyer)
        if first and self.on_first_fill is not None:
            self.on_first_fill(account.name, order.serial, now)  # the limiter's key: unique over all symbols
        return trade

    def _fee(self, account: Account, spec: SymbolSpec, buy: bool, price: Decimal, qty: Decimal, rate: Decimal) -> Fee:
        """The commission of a fill (sim._fees): in BNB when the account pays with it and has enough free."""
        if not account.spec.bnb_fees:
            return fill_fee(spec, buy=buy, price=price, qty=qty, rate=rate, bnb_discount=None, bnb_per_quote=None,
                            free_bnb=ZERO)  # fmt: skip
        per_quote = bnb_price(spec.quote, self.markets, self.config.bnb_prices)
        held = account.balances.get(BNB)  # not `bal`: asking must not add an empty BNB balance to the account
        return fill_fee(spec, buy=buy, price=price, qty=qty, rate=rate, bnb_discount=account.spec.bnb_discount,
                        bnb_per_quote=per_quote, free_bnb=held.free if held is not None else ZERO)  # fmt: skip

    def _market_trade(
        self, symbol: str, trade_id: int, price: Decimal, qty: Decimal, now: int, buyer_maker: bool
    ) -> None:
        stream = symbol.lower() + "@trade"
        if stream in self.market_subs:
            self.outbox.append(
                (
                    "market",
                    stream,
                    {
                        "e": "trade",
                        "E": now,
                        "s": symbol,
                        "t": trade_id,
                        "p": fmt(price),
                        "q": fmt(qty),
                        "T": now,
                        "m": buyer_maker,
                        "M": True,
                    },
                )
            )

    def book_ticker(self, symbol: str) -> dict[str, object]:
        """``<symbol>@bookTicker`` payload (also the REST bookTicker shape without ``u``)."""
        m = self.markets[symbol]
        bid = m.top("bid") or (ZERO, ZERO)  # levels emptied by taker orders are not the top any more
        ask = m.top("ask") or (ZERO, ZERO)
        return {
            "u": m.update_id,
            "s": symbol,
            "b": fmt(bid[0]),
            "B": fmt(bid[1]),
            "a": fmt(ask[0]),
            "A": fmt(ask[1]),
        }
