"""Thin aiohttp REST layer: Binance routes, auth, weights, faults and headers around the pure core."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from aiohttp import web
from loguru import logger

from sim._accounts import Account
from sim._auth import check_timestamp, split_signature, valid_key_format
from sim._core import SimCore
from sim._dispatch import Dispatcher
from sim._dispatch import Handler as HttpHandler
from sim._errors import SimError, bad_param, fmt
from sim._faults import REST_KINDS, FaultSpec
from sim._listenkeys import ListenKeyBook
from sim._params import parse_form, req
from sim._rest_market import (
    book_ticker_rest,
    depth,
    depth_weight,
    exchange_info_parts,
    info_symbols,
    ticker_24hr,
)
from sim._rest_orders import Ctx, TradingHandlers

__all__ = ["RestApi"]

_JSON = "application/json"
_EVENTS_FIRST_WAIT_S = 5.0  # float-ok: seconds; a client that reads nothing must not hold the response forever
_EMPTY_INFO = orjson.dumps({"timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [], "symbols": []})


Handler = Callable[[Ctx], object]
Weight = Callable[[dict[str, str]], int]


@dataclass
class Route:
    """A Binance endpoint: weight, security and handler."""

    method: str
    path: str
    weight: Weight
    security: str  # NONE | SIGNED | TRADE | KEY
    fn: Handler
    zero_on_success: bool = False


def _w(n: int) -> Weight:
    return lambda _p: n


def _sym_w(with_symbol: int, without: int) -> Weight:
    return lambda p: with_symbol if (p.get("symbol") or p.get("symbols")) else without


class RestApi(TradingHandlers):
    """Registers Binance's spot REST routes on an aiohttp app."""

    def __init__(self, core: SimCore) -> None:
        self.core = core
        ex = core.exchange
        head, tail = exchange_info_parts(ex, list(ex.specs))
        self._info_head, self._info_tail = head, tail
        self._info_version = ex.info_version
        self._listen_seq = 0

    def routes(self) -> list[Route]:
        """Every route served (binance.us adds the listenKey endpoints)."""
        r = [
            Route("GET", "/api/v3/ping", _w(1), "NONE", lambda c: {}),
            Route("GET", "/api/v3/time", _w(1), "NONE", lambda c: {"serverTime": c.now}),
            Route("GET", "/api/v3/exchangeInfo", _w(20), "NONE", self.exchange_info),
            Route("GET", "/api/v3/depth", depth_weight, "NONE", lambda c: depth(self.core.exchange, c.params)),
            Route("GET", "/api/v3/ticker/24hr", _sym_w(2, 80), "NONE", self.ticker_24hr),
            Route("GET", "/api/v3/ticker/price", _sym_w(2, 4), "NONE", self.ticker_price),
            Route("GET", "/api/v3/ticker/bookTicker", _sym_w(2, 4), "NONE", self.book_ticker),
            Route("GET", "/api/v3/avgPrice", _w(2), "NONE", self.avg_price),
            Route("POST", "/api/v3/order", _w(1), "TRADE", self.new_order, zero_on_success=True),
            Route("POST", "/api/v3/order/test", _w(1), "TRADE", self.test_order),
            Route("GET", "/api/v3/order", _w(4), "SIGNED", self.get_order),
            Route("DELETE", "/api/v3/order", _w(1), "TRADE", self.cancel_order, zero_on_success=True),
            Route("GET", "/api/v3/openOrders", _sym_w(6, 80), "SIGNED", self.open_orders),
            Route("DELETE", "/api/v3/openOrders", _w(1), "TRADE", self.cancel_all, zero_on_success=True),
            Route("GET", "/api/v3/allOrders", _w(20), "SIGNED", self.all_orders),
            Route("GET", "/api/v3/myTrades", lambda p: 5 if p.get("orderId") else 20, "SIGNED", self.my_trades),
            Route("GET", "/api/v3/account", _w(20), "SIGNED", self.account),
            Route("GET", "/api/v3/account/commission", _w(20), "SIGNED", self.account_commission),
            Route("GET", "/sapi/v1/account/apiRestrictions", _w(1), "SIGNED", self.api_restrictions),
            Route("GET", "/sapi/v1/capital/config/getall", _w(10), "SIGNED", lambda c: []),
            Route("GET", "/sapi/v1/margin/allPairs", _w(1), "SIGNED", lambda c: []),
            Route("GET", "/sapi/v1/margin/isolated/allPairs", _w(10), "SIGNED", lambda c: []),
            Route("GET", "/fapi/v1/exchangeInfo", _w(1), "NONE", lambda c: _EMPTY_INFO),
            Route("GET", "/dapi/v1/exchangeInfo", _w(1), "NONE", lambda c: _EMPTY_INFO),
        ]
        if self.core.config.exchange_mode == "binanceus":
            r += [
                Route("POST", "/api/v3/userDataStream", _w(2), "KEY", self.listen_key_new),
                Route("PUT", "/api/v3/userDataStream", _w(2), "KEY", self.listen_key_keepalive),
                Route("DELETE", "/api/v3/userDataStream", _w(2), "KEY", self.listen_key_close),
            ]
        return r

    def register(self, dispatcher: Dispatcher) -> None:
        """Add the routes to ``dispatcher``."""
        for route in self.routes():
            dispatcher.add(route.method, route.path, self._make_handler(route))

    def _make_handler(self, route: Route) -> HttpHandler:
        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            return await self.handle(request, route)

        return handler

    # ------------------------------------------------------------------ pipeline
    async def handle(self, request: web.BaseRequest, route: Route) -> web.StreamResponse:
        """Faults → weight → auth → handler → headers; errors in Binance's framing."""
        core = self.core
        now = core.now()
        ip = request.remote or "local"
        raw_qs = request.raw_path.partition("?")[2]
        body = await request.read() if request.body_exists else b""
        faults: list[FaultSpec] = []
        if core.faults.entries:
            faults = core.faults.take(f"{route.method} {route.path}", REST_KINDS, now, raw_qs[:80])
        headers: dict[str, str] = {}
        after: list[FaultSpec] = []
        weight = 0
        status = 200
        payload: object
        account: Account | None = None
        try:
            skew = lag = lag_lookups = 0
            for f in faults:
                if f.kind == "latency":
                    await asyncio.sleep(f.latency_ms / 1000)
                    now = core.now()
                elif f.kind == "rate_limit":
                    raise SimError(
                        429,
                        -1003,
                        "Too much request weight used; current limit is "
                        f"{core.config.rate_limits.request_weight_per_minute} request weight per 1 "
                        "MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
                        retry_after=f.retry_after,
                    )
                elif f.kind == "ban":
                    until = now + f.retry_after * 1000
                    raise SimError(
                        418,
                        -1003,
                        f"Way too much request weight used; IP banned until {until}. "
                        "Please use WebSocket Streams for live updates to avoid bans.",
                        retry_after=f.retry_after,
                    )
                elif f.kind == "clock_skew":
                    skew += f.skew_ms
                elif f.kind == "visibility_lag":
                    lag = max(lag, f.lag_ms)
                    lag_lookups = max(lag_lookups, f.lag_lookups)
                elif f.kind == "http_error" and not f.execute:
                    raise SimError(f.status, f.code, f.msg)
                else:
                    after.append(f)
            params: dict[str, str] = {}
            if body:
                parse_form(body.decode("utf-8", errors="replace"), params)
            if raw_qs:
                parse_form(raw_qs, params)  # the query string wins over the body
            weight = route.weight(params)
            core.limiter.check_weight(ip, weight, now)
            if route.security != "NONE":
                account = self._auth(request, route, raw_qs, body, params, now + skew)
            ctx = Ctx(params, account, now, lag, headers, lag_lookups)
            payload = route.fn(ctx)
            if route.zero_on_success:
                weight = 0
        except SimError as err:
            status = err.status
            payload = err.body()
            if err.retry_after is not None:
                headers["Retry-After"] = str(err.retry_after)
            if err.code == -1003:  # refused by the weight limiter itself: nothing was admitted
                weight = 0
        except Exception:  # noqa: BLE001 - a simulator bug must still answer in Binance's framing
            logger.exception("sim internal error on {} {}", route.method, route.path)
            status, payload = 500, {"code": -1000, "msg": "An unknown error occurred while processing the request."}
        finally:
            core.flush()
        if account is not None and any(f.kind == "events_first" for f in after):
            await self._events_first(account.name, f"{route.method} {route.path}")
        if weight:
            core.limiter.add_weight(ip, weight, now)
        used = str(core.limiter.used_weight(ip, now))
        headers["X-MBX-USED-WEIGHT-1M"] = used
        headers["X-MBX-USED-WEIGHT"] = used
        for f in after:
            if f.kind == "withhold":
                logger.info("sim fault withhold {} {} for {}s", route.method, route.path, f.hold_s)
                await asyncio.sleep(f.hold_s)
            elif f.kind == "http_error":
                status, payload = f.status, {"code": f.code, "msg": f.msg}
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return web.Response(body=data, status=status, headers=headers, content_type=_JSON)

    async def _events_first(self, account: str, what: str) -> None:
        """Hold the response until the stream has written the request's events (Binance does not order the two)."""
        try:
            await asyncio.wait_for(self.core.wait_user_sent(account), _EVENTS_FIRST_WAIT_S)
        except TimeoutError:
            logger.warning("sim fault events_first on {}: the user stream did not take its events in time", what)

    def _auth(
        self, request: web.BaseRequest, route: Route, raw_qs: str, body: bytes, params: dict[str, str], now: int
    ) -> Account:
        core = self.core
        key = request.headers.get("X-MBX-APIKEY")
        if not valid_key_format(key):
            raise SimError(401, -2014, "API-key format invalid.")
        assert key is not None
        account = core.by_key.get(key)
        if account is None:
            raise SimError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if route.security == "KEY":
            return account
        # latin-1 maps bytes 1:1, so the verified payload is exactly the bytes received.
        split = split_signature(raw_qs + body.decode("latin-1"))
        if split is None or not split[1]:
            raise bad_param("signature")
        check_timestamp(params.get("timestamp"), params.get("recvWindow"), now)
        if not core.verifiers[key].verify(split[0].encode("latin-1", errors="replace"), split[1], url_encoded=True):
            raise SimError(400, -1022, "Signature for this request is not valid.")
        if route.security == "TRADE" and not account.spec.enable_spot_trading:
            raise SimError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        return account

    # ------------------------------------------------------------------ public
    def exchange_info(self, c: Ctx) -> object:
        ex = self.core.exchange
        syms = info_symbols(ex, c.params)
        if syms is None:
            if self._info_version != ex.info_version:  # a symbol's status changed: rebuild the cached body
                self._info_head, self._info_tail = exchange_info_parts(ex, list(ex.specs))
                self._info_version = ex.info_version
            return self._info_head + str(c.now).encode() + self._info_tail
        head, tail = exchange_info_parts(ex, syms)
        return head + str(c.now).encode() + tail

    def _markets(self, c: Ctx) -> tuple[list[str], bool]:
        syms = info_symbols(self.core.exchange, c.params)
        single = bool(c.params.get("symbol"))
        return (syms if syms is not None else list(self.core.exchange.specs)), single

    def ticker_24hr(self, c: Ctx) -> object:
        syms, single = self._markets(c)
        mini = c.params.get("type") == "MINI"
        out = [ticker_24hr(self.core.exchange.markets[s], c.now, mini) for s in syms]
        return out[0] if single else out

    def ticker_price(self, c: Ctx) -> object:
        syms, single = self._markets(c)
        ex = self.core.exchange
        out = [{"symbol": s, "price": fmt(ex.markets[s].last_price)} for s in syms]
        return out[0] if single else out

    def book_ticker(self, c: Ctx) -> object:
        syms, single = self._markets(c)
        out = [book_ticker_rest(self.core.exchange, s) for s in syms]
        return out[0] if single else out

    def avg_price(self, c: Ctx) -> object:
        spec = self.core.exchange.spec(c.params.get("symbol"))
        return {"mins": 5, "price": fmt(self.core.exchange.markets[spec.symbol].mid), "closeTime": c.now}

    # ------------------------------------------------------------------ binance.us listenKey
    def listen_key_new(self, c: Ctx) -> object:
        # Binance: "If the account has an active listenKey, that listenKey will be returned and its validity will be
        # extended for 60 minutes": every user of the account shares it (and one's DELETE ends it for all).
        for key in list(self.core.listen_keys):
            if self.core.listen_keys.get(key) == c.acct.name:  # `get` keeps a live key alive (`ListenKeyBook`)
                return {"listenKey": key}
        self._listen_seq += 1
        key = hashlib.sha256(f"{self.core.config.seed}:{c.acct.name}:{self._listen_seq}".encode()).hexdigest()
        self.core.listen_keys[key] = c.acct.name
        return {"listenKey": key}

    def _listen_key(self, c: Ctx) -> str:
        key = req(c.params, "listenKey")
        if self.core.listen_keys.get(key) != c.acct.name:
            raise SimError(400, -1125, "This listenKey does not exist.")
        return key

    def listen_key_keepalive(self, c: Ctx) -> object:
        self._listen_key(c)
        return {}

    def listen_key_close(self, c: Ctx) -> object:
        key = self._listen_key(c)
        book = self.core.listen_keys
        if isinstance(book, ListenKeyBook):
            book.close(key)  # its streams get nothing more, whoever opened them
        else:
            del book[key]
        return {}
