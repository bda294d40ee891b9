"""The matching engine and ledger (pure: time is passed in, events go to an outbox).

Order entry, lookups, cancels and price moves live here; the state and settlement they build on (``Ledger``)
live in ``sim._ledger``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from sim._accounts import Account
from sim._crossing import Path, Step, cross
from sim._errors import DUPLICATE_ORDER, MARKET_CLOSED, WOULD_TAKE, SimError, fmt
from sim._ledger import SYMBOL_STATUSES, ZERO, Ledger, OutEvent
from sim._market import SymbolMarket
from sim._orders import Order, Trade
from sim._symbols import SymbolSpec
from sim._validate import NewOrder, parse_new_order

__all__ = ["Exchange", "OutEvent", "PlaceResult"]


@dataclass
class PlaceResult:
    """Outcome of an accepted order."""

    order: Order
    fills: list[Trade]
    resp_type: str


class Exchange(Ledger):
    """Accounts, symbols, orders and trades, with deterministic matching against synthetic depth.

    Every mutating method takes ``now_ms`` and appends user-stream and market events to ``outbox``;
    the I/O layer drains it. ``on_first_fill(account, order_id, now_ms)`` lets the rate limiter
    decrement the unfilled-order count.
    """

    # ------------------------------------------------------------------ orders
    def place_order(
        self, account: Account, p: Mapping[str, str], now: int, *, test: bool = False, external: bool = False
    ) -> PlaceResult:
        """Validate and execute a new order (``POST /api/v3/order`` parameters, strings)."""
        spec = self.spec(p.get("symbol"))
        market = self.markets[spec.symbol]
        new = parse_new_order(spec, market.mid, p)
        side, otype, price, cid = new.side, new.type, new.price, new.client_order_id
        if self.status[spec.symbol] != "TRADING":
            raise SimError(400, -2010, MARKET_CLOSED)
        if cid:
            prev = self._by_cid.get((account.name, spec.symbol, cid))
            if prev is not None and prev.is_open:
                raise SimError(400, -2010, DUPLICATE_ORDER)
        if new.rests:
            open_count = sum(1 for o in self.open_by_symbol[spec.symbol].values() if o.account == account.name)
            if open_count >= spec.max_num_orders:
                raise SimError(400, -2010, "Filter failure: MAX_NUM_ORDERS")
        # A LIMIT_MAKER would take if anything on the other side (synthetic or a resting user order) is at its price.
        resting = self._resting(spec.symbol)
        if otype == "LIMIT_MAKER" and cross(market, side, price, new.qty, None, resting, "", "NONE").steps:
            raise SimError(400, -2010, WOULD_TAKE)
        if test:
            return PlaceResult(order=_dummy_order(spec.symbol, account.name, now), fills=[], resp_type="ACK")
        return self._execute(account, market, new, now, external)

    def _check_funds(
        self, account: Account, spec: SymbolSpec, side: str, otype: str, price: Decimal | None,
        qty: Decimal | None, path: Path,
    ) -> None:  # fmt: skip
        if otype != "MARKET":
            assert price is not None
            assert qty is not None
            if side == "BUY":
                account.require_free(spec.quote, price * qty)
            else:
                account.require_free(spec.base, qty)
            return
        if side == "BUY":
            account.require_free(spec.quote, sum((s.price * s.qty for s in path.trades), ZERO))
        else:
            account.require_free(spec.base, path.filled)

    def _resting(self, symbol: str) -> list[Order]:
        """The open user orders of `symbol`: all on the book, lagged ones too (a `visibility_lag` hides an order
        from REST only; the matching engine has it from its acceptance on, as Binance's does)."""
        return list(self.open_by_symbol[symbol].values())

    def _execute(self, account: Account, market: SymbolMarket, new: NewOrder, now: int, external: bool) -> PlaceResult:
        spec, side, otype, tif = new.spec, new.side, new.type, new.time_in_force
        price, qty, quote_qty, cid, resp_type = new.price, new.qty, new.quote_qty, new.client_order_id, new.resp_type
        limit = price if otype != "MARKET" else None
        path = cross(market, side, limit, qty, quote_qty, self._resting(spec.symbol), account.name, new.stp_mode)
        self._check_funds(account, spec, side, otype, price, qty, path)
        order = Order(
            symbol=spec.symbol,
            order_id=self._new_order_id(spec.symbol),
            serial=self._next_serial,
            client_order_id=cid or self.new_client_id(),
            account=account.name,
            side=side,
            type=otype,
            time_in_force=tif,
            price=price if price is not None else ZERO,
            orig_qty=qty if qty is not None else ZERO,
            quote_order_qty=quote_qty if quote_qty is not None else ZERO,
            time=now,
            update_time=now,
            external=external,
            stp_mode=new.stp_mode,
        )
        if otype != "MARKET":
            assert price is not None
            assert qty is not None
            order.lock_asset = spec.quote if side == "BUY" else spec.base
            order.locked = price * qty if side == "BUY" else qty
            account.lock(order.lock_asset, order.locked)
            if tif == "GTC":
                order.working_time = now
        self.orders[(spec.symbol, order.order_id)] = order
        self._by_cid[(account.name, spec.symbol, order.client_order_id)] = order
        self._report(order, "NEW", now)
        fills: list[Trade] = []
        if otype == "LIMIT" and tif == "FOK" and qty is not None and path.filled < qty:
            path = Path([])
            order.expiry_reason = "UNFILLED_FOK_ORDER_EXPIRED"
        if quote_qty is not None:
            # A quoteOrderQty order's quantity is what the quote amount buys (sells) in the book.
            order.orig_qty = path.filled
        touched = {account.name}
        for step in path.steps:
            if step.maker is None:
                market.consume("ask" if side == "BUY" else "bid", step.level, step.qty)
                fills.append(self._fill(order, account, market, step.price, step.qty, maker=False, now=now))
                continue
            maker_account = self.accounts[step.maker.account]
            touched.add(maker_account.name)
            if step.prevent:
                self._prevent(step.maker, maker_account, order, step, now)
                continue
            tid = self._new_trade_id(spec.symbol)  # one trade, seen by both orders; the taker's side prints it
            self._fill(step.maker, maker_account, market, step.price, step.qty, maker=True, now=now, trade_id=tid,
                       public=False)  # fmt: skip
            fills.append(self._fill(order, account, market, step.price, step.qty, maker=False, now=now, trade_id=tid))
        if path.taker_prevented and path.counter is not None:
            # What would have matched: at the counter order's price, as much as both had left (a quote-amount
            # order's quantity is what it bought, so its own "left" is the counter's).
            counter = path.counter
            qty = min(order.remaining, counter.remaining) if order.remaining > 0 else counter.remaining
            self._prevent(order, account, counter, Step(counter.price, qty), now)
        elif order.remaining > 0 or order.executed_qty == 0:
            if otype == "MARKET":
                if order.executed_qty == 0 or (qty is not None and order.remaining > 0):
                    order.expiry_reason = "INSUFFICIENT_LIQUIDITY"
                    self._expire(order, account, now)
            elif tif == "GTC":
                self.open_by_symbol[spec.symbol][order.order_id] = order
            else:
                if order.expiry_reason is None:
                    order.expiry_reason = "UNFILLED_IOC_QUANTITY_EXPIRED"
                self._expire(order, account, now)
        for name in sorted(touched):
            self._position(self.accounts[name], now)
        return PlaceResult(order=order, fills=fills, resp_type=resp_type)

    def _prevent(self, order: Order, account: Account, counter: Order, step: Step, now: int) -> None:
        """Self-trade prevention expires `order` (EXPIRED_IN_MATCH) where it would have traded with `counter`."""
        self._next_prevented_id += 1
        qty = step.qty
        order.prevented = {
            "v": self._next_prevented_id, "A": fmt(qty), "B": fmt(qty), "u": self._next_prevented_id,
            "U": counter.order_id, "Cs": counter.symbol, "pl": fmt(qty), "pL": fmt(step.price),
            "pY": fmt(qty * step.price),
        }  # fmt: skip
        order.status = "EXPIRED_IN_MATCH"
        order.update_time = now
        self._release(order, account)
        self.open_by_symbol[order.symbol].pop(order.order_id, None)
        self._report(order, "TRADE_PREVENTION", now)

    # ------------------------------------------------------------------ lookups and cancels
    def find_order(
        self, account: Account, symbol: str, order_id: int | None, orig_cid: str | None, now: int, *, cancel: bool
    ) -> Order:
        """Look an order up by id or client id (-2013 on query / -2011 on cancel if unknown)."""
        missing = (
            SimError(400, -2011, "Unknown order sent.") if cancel else SimError(400, -2013, "Order does not exist.")
        )
        order: Order | None
        if order_id is not None:
            order = self.order(symbol, order_id)
            if order is not None and order.account != account.name:
                order = None  # another account's order of that id: unknown to this one (not -2039)
            if order is not None and orig_cid and order.client_order_id != orig_cid and not cancel:
                raise SimError(400, -2039, "Client order ID is not correct for this order ID.")
        elif orig_cid:
            order = self._by_cid.get((account.name, symbol, orig_cid))
        else:
            raise SimError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if order is None or order.account != account.name or order.symbol != symbol or not order.looked_up(now):
            raise missing  # an order a `visibility_lag` hides: REST does not know it yet (it still trades)
        return order

    def by_client_id(self, account: str, symbol: str, client_order_id: str) -> Order | None:
        """The latest order of ``account`` on ``symbol`` with this client order id, if any."""
        return self._by_cid.get((account, symbol, client_order_id))

    def cancel_order(
        self, account: Account, symbol: str, order_id: int | None, orig_cid: str | None, new_cid: str | None, now: int
    ) -> dict[str, object]:
        """Cancel an open order; returns the ``DELETE /api/v3/order`` body."""
        self.spec(symbol)
        order = self.find_order(account, symbol, order_id, orig_cid, now, cancel=True)
        if not order.is_open:
            raise SimError(400, -2011, "Unknown order sent.")
        return self._cancel(order, account, new_cid or self.new_client_id(), now)

    def _cancel(self, order: Order, account: Account, cancel_cid: str, now: int) -> dict[str, object]:
        order.status = "CANCELED"
        order.update_time = now
        self._release(order, account)
        self.open_by_symbol[order.symbol].pop(order.order_id, None)
        self._report(order, "CANCELED", now, cancel_client_id=cancel_cid)
        self._position(account, now)
        return order.cancel_json(cancel_cid, now)

    def cancel_all(self, account: Account, symbol: str, now: int) -> list[dict[str, object]]:
        """``DELETE /api/v3/openOrders``: cancel every open order of the account on ``symbol``."""
        self.spec(symbol)
        # Only what REST shows: an order a `visibility_lag` still hides is unknown here, as to a cancel by id.
        mine = [o for o in self.open_by_symbol[symbol].values() if o.account == account.name and o.visible(now)]
        if not mine:
            raise SimError(400, -2011, "Unknown order sent.")
        return [self._cancel(o, account, self.new_client_id(), now) for o in sorted(mine, key=lambda o: o.order_id)]

    def open_orders(self, account: Account, symbol: str | None, now: int) -> list[Order]:
        """Visible open orders of the account, oldest first."""
        syms = [self.spec(symbol).symbol] if symbol is not None else list(self.specs)
        out = [o for s in syms for o in self.open_by_symbol[s].values() if o.account == account.name and o.visible(now)]
        return sorted(out, key=lambda o: o.order_id)

    # ------------------------------------------------------------------ market
    def set_symbol_status(self, symbol: str, status: str) -> None:
        """Set ``symbol``'s exchangeInfo status; off TRADING it takes no new orders and its book does not match."""
        spec = self.spec(symbol)
        if status not in SYMBOL_STATUSES:
            raise ValueError(f"unknown symbol status {status!r}; one of {', '.join(SYMBOL_STATUSES)}")
        self.status[spec.symbol] = status
        self.info_version += 1

    def set_price(self, symbol: str, price: Decimal, now: int) -> None:
        """Move the mid of ``symbol`` to ``price`` and match resting orders against the move."""
        m = self.markets[self.spec(symbol).symbol]
        m.set_mid(price)
        self._after_move(m, now)

    def set_quote(
        self,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        now: int,
        *,
        bid_qty: Decimal | None = None,
        ask_qty: Decimal | None = None,
    ) -> None:
        """Put the top of ``symbol``'s book at ``bid`` / ``ask`` (an external quote) and match resting orders.

        ``bid_qty`` / ``ask_qty``: the venue's quantity at those prices (its bookTicker ``B`` / ``A``). Only
        ``cross_fills = "quote_size"`` uses them (they bound what resting and taker orders get at the venue's best
        price); the other modes follow the prices only, so a quote whose prices did not change does nothing there.
        """
        m = self.markets[self.spec(symbol).symbol]
        sized = bid_qty is not None or ask_qty is not None
        if self.config.cross_fills != "quote_size":
            if sized and m.quote == m.quote_prices(bid, ask):
                return  # a size-only update: these modes follow the venue's prices, not its sizes
            bid_qty = ask_qty = None
        moved = m.set_quote(bid, ask, bid_qty, ask_qty)
        self._after_move(m, now, moved=moved)

    def step(self, n: int, now: int) -> None:
        """Advance every symbol's price process ``n`` ticks, matching resting orders each tick."""
        for _ in range(n):
            for sym in self.specs:
                if self.status[sym] != "TRADING":
                    continue  # a closed market's book stands still
                m = self.markets[sym]
                m.set_mid(self.price_source.next_price(sym, m.mid))
                self._after_move(m, now)

    def _after_move(self, m: SymbolMarket, now: int, *, moved: bool = True) -> None:
        """Match resting orders against the book's new top; ``moved`` False: only the venue's sizes changed."""
        sym = m.spec.symbol
        stream = sym.lower() + "@bookTicker"
        if stream in self.market_subs:
            self.outbox.append(("market", stream, self.book_ticker(sym)))
        if self.status[sym] != "TRADING":
            return  # no trading: nothing matches while the symbol is closed
        # A size-only update is no price move: no synthetic flow went through the book.
        pool = m.tick_volume() if moved else ZERO
        ask, bid = m.best_ask, m.best_bid
        resting = self._resting(sym)  # lagged orders included: REST lags the matching engine, not the reverse
        # Price-time priority: the best price first, then the oldest (order ids grow with time).
        buys = sorted((o for o in resting if o.side == "BUY" and o.price >= ask), key=lambda o: (-o.price, o.order_id))
        sells = sorted((o for o in resting if o.side == "SELL" and o.price <= bid), key=lambda o: (o.price, o.order_id))
        touched: set[str] = set()
        mode = self.config.cross_fills
        for group, book_side in ((buys, "ask"), (sells, "bid")):
            # What the crossed orders share: the tick's synthetic volume, the venue's size not yet taken at its
            # best price (quote_size, where the quote gave it), or no bound (full; quote_size without a size).
            venue = m.venue_left(book_side) if mode == "quote_size" else None
            left = venue if venue is not None else pool if mode == "tick_volume" else None
            for o in group:
                take = o.remaining if left is None else min(o.remaining, left)
                if take <= 0:
                    break
                acct = self.accounts[o.account]
                self._fill(o, acct, m, o.price, take, maker=True, now=now)
                touched.add(o.account)
                if venue is not None:
                    m.consume(book_side, 0, take)
                if left is not None:
                    # Lot steps: the venue's size is shared in whole steps (an order's odd remainder aside).
                    left = m.spec.floor_step(left - take) if venue is not None else left - take
        if pool > 0:
            # The synthetic flow that moved the price: it sets the last price and feeds trade streams.
            tid = self._new_trade_id(sym)
            m.record_trade(tid, m.mid, pool)
            self._market_trade(sym, tid, m.mid, pool, now, buyer_maker=False)
        for name in sorted(touched):
            self._position(self.accounts[name], now)

    def fill_order(self, order: Order, qty: Decimal | None, now: int) -> Trade:
        """Fill a resting order (fully, or by ``qty``) at its limit price as maker."""
        if not order.is_open:
            raise ValueError(f"order {order.order_id} is not open ({order.status})")
        take = order.remaining if qty is None else qty
        if take <= 0 or take > order.remaining:
            raise ValueError(f"fill quantity {take} outside (0, {order.remaining}]")
        acct = self.accounts[order.account]
        trade = self._fill(order, acct, self.markets[order.symbol], order.price, take, maker=True, now=now)
        self._position(acct, now)
        return trade

    def credit(self, account: Account, asset: str, amount: Decimal, now: int) -> None:
        """Deposit (or withdraw, if negative) ``amount``: ``balanceUpdate`` then ``outboundAccountPosition``."""
        account.credit(asset, amount)
        self.outbox.append(
            ("user", account.name, {"e": "balanceUpdate", "E": now, "a": asset, "d": fmt(amount), "T": now})
        )
        self._position(account, now)


def _dummy_order(symbol: str, account: str, now: int) -> Order:
    return Order(
        symbol=symbol,
        order_id=0,
        client_order_id="",
        account=account,
        side="BUY",
        type="LIMIT",
        time_in_force="GTC",
        price=ZERO,
        orig_qty=ZERO,
        quote_order_qty=ZERO,
        time=now,
    )
