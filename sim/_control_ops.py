"""In-loop control operations (``ControlOps``): prices, fills, external orders, credits, the ledger and faults.

They run on the simulator loop; ``sim._control`` wraps them in the thread-safe ``Control`` facade and serves
them as the ``/_sim/`` HTTP routes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from loguru import logger

from sim._accounts import Account
from sim._core import SimCore
from sim._errors import fmt
from sim._faults import FaultSpec
from sim._orders import Order
from sim._ws import Conn, WsLayer

__all__ = ["ControlOps"]

T = TypeVar("T")


def _resolver(fut: asyncio.Future[None]) -> Callable[[], None]:
    def resolve() -> None:
        if not fut.done():
            fut.set_result(None)

    return resolve


def _kind_match(conn: Conn, kind: str) -> bool:
    if kind == "all":
        return True
    if kind == "user":
        return conn.kind == "listen-key" or (conn.kind == "ws-api" and bool(conn.subs))
    return conn.kind == kind


class ControlOps:
    """Control operations; run on the simulator loop (use :class:`Control` from other threads)."""

    def __init__(self, core: SimCore, ws: WsLayer) -> None:
        self.core = core
        self.ws = ws

    def _account(self, name: str | None) -> Account:
        accounts = self.core.exchange.accounts
        if name is None:
            return next(iter(accounts.values()))
        if name in accounts:
            return accounts[name]
        raise KeyError(f"unknown account {name!r}")

    def _order(
        self, symbol: str, order_id: int | None, client_order_id: str | None, account: str | None = None
    ) -> Order:
        ex = self.core.exchange
        if order_id is not None:
            order = ex.order(symbol, int(order_id))  # order ids are per symbol
            if order is None:
                raise KeyError(f"unknown order {order_id} on {symbol}")
            return order
        if client_order_id is None:
            raise ValueError("order_id or client_order_id is required")
        names = [account] if account else list(ex.accounts)
        for name in names:
            found = ex.by_client_id(name, symbol, client_order_id)
            if found is not None:
                return found
        raise KeyError(f"unknown client order id {client_order_id} on {symbol}")

    def _done(self, result: T) -> T:
        self.core.flush()
        return result

    # ------------------------------------------------------------------ market
    async def price(self, symbol: str) -> str:
        """Current mid price of ``symbol``."""
        return fmt(self.core.exchange.markets[symbol].mid)

    async def set_price(self, symbol: str, price: Decimal | str) -> str:
        """Set the mid price; resting orders the move crosses fill."""
        self.core.exchange.set_price(symbol, Decimal(price), self.core.now())
        return self._done(fmt(self.core.exchange.markets[symbol].mid))

    async def move_price(self, symbol: str, delta: Decimal | str) -> str:
        """Move the mid price by ``delta`` (absolute, in quote units)."""
        mid = self.core.exchange.markets[symbol].mid
        return await self.set_price(symbol, mid + Decimal(delta))

    async def spike(self, symbol: str, percent: Decimal | str) -> str:
        """Jump the mid price by ``percent`` % (negative for a drop)."""
        mid = self.core.exchange.markets[symbol].mid
        return await self.set_price(symbol, mid * (1 + Decimal(percent) / 100))

    async def set_quote(self, symbol: str, bid: Decimal | str, ask: Decimal | str) -> dict[str, str]:
        """Put the top of the book at ``bid`` / ``ask`` (as a price feed does); resting orders it crosses fill."""
        self.core.exchange.set_quote(symbol, Decimal(bid), Decimal(ask), self.core.now())
        m = self.core.exchange.markets[symbol]
        return self._done({"bid": fmt(m.best_bid), "ask": fmt(m.best_ask), "mid": fmt(m.mid)})

    async def set_symbol_status(self, symbol: str, status: str) -> str:
        """Set ``symbol``'s status (``TRADING``, ``END_OF_DAY``, ``HALT``, ``BREAK``, ``CANCEL_ONLY``), as exchangeInfo
        shows it: off TRADING new orders get -2010 "Market is closed.", cancels still work and nothing matches."""
        self.core.exchange.set_symbol_status(symbol, str(status))
        logger.info("sim symbol {} status {}", symbol, status)
        return self.core.exchange.status[symbol]

    async def requests(self) -> list[dict[str, object]]:
        """The request log (``SimConfig.record_requests``); raises if recording is off."""
        if self.core.request_log is None:
            raise ValueError("request recording is off: start the simulator with SimConfig(record_requests=True)")
        return list(self.core.request_log)

    async def step_market(self, n: int = 1) -> dict[str, str]:
        """Advance the seeded price process ``n`` ticks, matching resting orders; returns the mids."""
        self.core.exchange.step(int(n), self.core.now())
        return self._done({s: fmt(m.mid) for s, m in self.core.exchange.markets.items()})

    # ------------------------------------------------------------------ orders and balances
    async def fill_order(
        self,
        symbol: str,
        order_id: int | None = None,
        client_order_id: str | None = None,
        quantity: Decimal | str | None = None,
    ) -> dict[str, object]:
        """Fill a resting order fully (``quantity=None``) or partially, at its price, as maker."""
        order = self._order(symbol, order_id, client_order_id)
        qty = None if quantity is None else Decimal(quantity)
        trade = self.core.exchange.fill_order(order, qty, self.core.now())
        return self._done(trade.my_trade_json())

    async def place_external_order(self, account: str | None = None, **params: Any) -> dict[str, object]:
        """Place an order as a person in the Binance UI would (no rate limits; events on the user stream)."""
        acct = self._account(account)
        p = {k: str(v) for k, v in params.items()}
        try:
            res = self.core.exchange.place_order(acct, p, self.core.now(), external=True)
        finally:
            self.core.flush()
        return res.order.new_order_json("FULL", res.fills)

    async def amend_order(
        self,
        symbol: str,
        quantity: Decimal | str,
        order_id: int | None = None,
        client_order_id: str | None = None,
        new_client_order_id: str | None = None,
    ) -> str:
        """Reduce a live order's quantity from outside (order amend keep priority, as the Binance UI's edit does):
        a ``REPLACED`` report, and the order's new client order id (generated unless given), which is returned."""
        order = self._order(symbol, order_id, client_order_id)
        try:
            self.core.exchange.amend_quantity(
                order, self._account(order.account), Decimal(quantity), new_client_order_id, self.core.now()
            )
        finally:
            self.core.flush()
        return order.client_order_id

    async def expire_order(
        self,
        symbol: str,
        order_id: int | None = None,
        client_order_id: str | None = None,
        reason: str = "EXCHANGE_CANCELED",
    ) -> str:
        """The exchange expires a resting order by its own rules (``EXPIRED`` with ``eR`` = ``reason``)."""
        order = self._order(symbol, order_id, client_order_id)
        if not order.is_open:
            raise ValueError(f"order {order.order_id} on {symbol} is not open ({order.status})")
        account = self._account(order.account)
        order.expiry_reason = reason
        try:
            self.core.exchange._expire(order, account, self.core.now())
            self.core.exchange._position(account, self.core.now())
        finally:
            self.core.flush()
        return order.status

    async def cancel_external_order(
        self, account: str | None, symbol: str, order_id: int | None = None, client_order_id: str | None = None
    ) -> dict[str, object]:
        """Cancel an order from outside (``CANCELED`` report with a web cancel id)."""
        order = self._order(symbol, order_id, client_order_id, account)
        acct = self._account(order.account)
        try:
            return self.core.exchange.cancel_order(acct, symbol, order.order_id, None, None, self.core.now())
        finally:
            self.core.flush()

    async def credit(self, account: str | None, asset: str, amount: Decimal | str, repeat: int = 1) -> dict[str, str]:
        """Deposit ``amount`` of ``asset`` (``repeat`` times): ``balanceUpdate`` + ``outboundAccountPosition``."""
        acct = self._account(account)
        now = self.core.now()
        for _ in range(int(repeat)):
            self.core.exchange.credit(acct, asset, Decimal(amount), now)
            if repeat > 1000:
                self.core.flush()
        b = acct.bal(asset)
        return self._done({"asset": asset, "free": fmt(b.free), "locked": fmt(b.locked)})

    async def ledger(self, account: str | None = None) -> dict[str, object]:
        """Orders, trades and balances of ``account`` (default: the first), plus the fault log."""
        acct = self._account(account)
        ex = self.core.exchange
        return {
            "account": acct.name,
            "orders": [o.query_json() | {"external": o.external} for o in ex.orders.values() if o.account == acct.name],
            "trades": [t.my_trade_json() for t in ex.trades if t.account == acct.name],
            "balances": {a: {"free": fmt(b.free), "locked": fmt(b.locked)} for a, b in sorted(acct.balances.items())},
            "faults": list(self.core.faults.log),
            "active_faults": self.core.faults.active(),
        }

    # ------------------------------------------------------------------ faults
    async def add_fault(self, spec: FaultSpec | dict[str, Any]) -> int:
        """Activate a fault; returns its id."""
        fs = spec if isinstance(spec, FaultSpec) else FaultSpec.model_validate(spec)
        fid = self.core.faults.add(fs)
        logger.info("sim fault {} added: {}", fid, fs.model_dump(exclude_defaults=True))
        return fid

    async def remove_fault(self, fault_id: int) -> bool:
        """Deactivate one fault."""
        return self.core.faults.remove(int(fault_id))

    async def clear_faults(self) -> None:
        """Deactivate every fault (the log is kept)."""
        self.core.faults.clear()

    async def _conns(self, kind: str, action: str) -> list[Conn]:
        conns = [c for c in list(self.ws.conns) if _kind_match(c, kind)]
        self.core.faults.note(action, kind, self.core.now(), f"{len(conns)} connection(s)")
        logger.info("sim fault {} on {} {} connection(s)", action, len(conns), kind)
        return conns

    async def close_ws(self, kind: str = "all", code: int = 1000) -> int:
        """Close WS connections (``ws-api`` | ``market`` | ``user`` | ``listen-key`` | ``all``) cleanly."""
        conns = await self._conns(kind, "ws_close")
        for c in conns:
            c.closed = True
            await c.ws.close(code=int(code), message=b"closed by simulator")
        return len(conns)

    async def abort_ws(self, kind: str = "all") -> int:
        """Abort WS connections at TCP level (no close frame)."""
        conns = await self._conns(kind, "ws_abort")
        for c in conns:
            c.closed = True
            if c.transport is not None:
                c.transport.abort()
        return len(conns)

    async def stall_ws(self, kind: str = "all", stalled: bool = True) -> int:
        """Stop (or resume) answering pings and sending frames on WS connections."""
        conns = await self._conns(kind, "ws_stall" if stalled else "ws_unstall")
        for c in conns:
            c.stalled = bool(stalled)
        return len(conns)

    async def event_stream_terminated(self, account: str | None = None) -> int:
        """Send ``eventStreamTerminated`` and end every WS API subscription of ``account``."""
        acct = self._account(account)
        n = 0
        for conn in list(self.ws.conns):
            for sid, (name, _) in list(conn.subs.items()):
                if name == acct.name and conn.kind == "ws-api":
                    self.ws.terminate(conn, sid)
                    n += 1
        self.core.faults.note("event_stream_terminated", f"user:{acct.name}", self.core.now(), f"{n} subscription(s)")
        return n

    async def expire_listen_keys(self, account: str | None = None) -> int:
        """Expire ``account``'s listenKeys now (Binance.US): each stream on one gets ``listenKeyExpired``, then
        closes; the key is gone (a keepalive answers -1125). Returns how many streams were told."""
        acct = self._account(account)
        keys = [key for key, name in self.core.listen_keys.items() if name == acct.name]
        return sum(self.ws.expire_listen_key(key) for key in keys)

    async def expire_due_listen_keys(self) -> int:
        """Expire now the listenKeys past their 60 minutes (the simulator also does so by itself within a fraction
        of a second; a test that moved the simulator's clock calls this to be sure). Returns how many expired."""
        return len(self.ws.expire_due_listen_keys())

    async def ban_ip(self, seconds: int, ip: str = "127.0.0.1") -> int:
        """Ban ``ip`` for ``seconds`` as the rate limiter would: REST answers 418, the WS API too, and its
        handshakes are refused with 418. Returns the ban's end (epoch ms)."""
        until = self.core.now() + int(seconds) * 1000
        self.core.limiter.ban(ip, until)
        self.core.faults.note("ip_banned", ip, self.core.now(), f"until {until}")
        logger.info("sim banned {} until {}", ip, until)
        return until

    async def lift_ban(self, ip: str = "127.0.0.1") -> bool:
        """End ``ip``'s ban now; False if it was not banned."""
        lifted = self.core.limiter.lift_ban(ip)
        self.core.faults.note("ip_ban_lifted", ip, self.core.now())
        return lifted

    async def server_shutdown(self) -> int:
        """Send the ``serverShutdown`` connection event to every WS API connection."""
        conns = await self._conns("ws-api", "server_shutdown")
        frame = orjson.dumps({"event": {"e": "serverShutdown", "E": self.core.now()}})
        for c in conns:
            c.push(frame)
        return len(conns)

    async def subscriptions(self) -> int:
        """Number of active user-data subscriptions (all accounts)."""
        return self.core.subscription_count()

    async def wait_subscriptions(self, n: int, within_s: float = 10.0) -> bool:  # float-ok: seconds
        """Wait until exactly ``n`` user-data subscriptions are active; False after ``within_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while self.core.subscription_count() != n:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            fut: asyncio.Future[None] = loop.create_future()
            self.core.sub_listeners.append(_resolver(fut))
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                return False
        return True
