"""Thin aiohttp WebSocket layer: the WS API (user data), market streams and Binance.US listenKey streams.

Rate limits (binance-spot.md §5, §6.5): every handshake counts against the IP's connection-attempt budget (300 per
5 minutes, the WS API and the streams each their own) and is refused with HTTP 429 beyond it; a WS API handshake
also costs 2 request weight — shared with REST — and is refused with HTTP 418 while the IP is banned, or 429/418 when
the weight is spent. A WS API request over the weight answers status 429 (418 once the violations earn a ban, and
the connection that earned it is then closed), with ``error.data.retryAfter`` the epoch ms to wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from loguru import logger

from sim._auth import check_timestamp, valid_key_format
from sim._core import SimCore, UserSub
from sim._dispatch import Dispatcher
from sim._errors import SimError, bad_param
from sim._listenkeys import ListenKeyBook
from sim._wsadmit import admit, throttled
from sim._wsconn import Conn

__all__ = ["Conn", "WsLayer"]

_WS_FAULTS = frozenset({"latency", "reject_subscribe"})
_MAX_ACTIVE_SUBS = 1000
_MAX_LIFETIME_SUBS = 65535
# WS API request weights (Binance's WS API docs); methods not listed cost 1.
_WEIGHTS = {
    "userDataStream.subscribe.signature": 2,
    "userDataStream.unsubscribe": 2,
    "session.status": 2,
    "session.subscriptions": 2,
}
_BAN_CLOSE_CODE = 1008  # policy violation: "an automated IP ban and you will be disconnected"
_SWEEP_S = 0.25  # float-ok: seconds; how often expired listenKeys are looked for (on the simulator's clock)


def _ws_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class WsLayer:
    """Registers the WS routes and keeps the open connections for the control API."""

    def __init__(self, core: SimCore) -> None:
        self.core = core
        self.conns: set[Conn] = set()
        # Binance.US listenKeys with their lifetime: the REST layer creates and keeps them alive in this book.
        self.listen_keys = ListenKeyBook(core.now, self._listen_key_expired, self._arm_sweep,
                                         on_close=self._listen_key_closed)  # fmt: skip
        core.listen_keys = self.listen_keys
        self._sweep: asyncio.TimerHandle | None = None
        self._expired_streams = 0  # listenKey streams told of their key's expiry, ever

    def register(self, dispatcher: Dispatcher) -> None:
        """Add ``/ws-api/v3``, ``/ws``, ``/ws/<streams>`` and ``/stream``."""
        dispatcher.add("GET", "/ws-api/v3", self.ws_api)
        dispatcher.add("GET", "/ws", self.market)
        dispatcher.add("GET", "/stream", self.market)
        dispatcher.add_prefix("GET", "/ws/", self.market)

    async def _open(self, request: web.BaseRequest, kind: str) -> Conn | web.Response:
        refusal = admit(self.core, request, kind)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Conn(ws, request, kind)
        conn.writer = asyncio.get_running_loop().create_task(conn.run_writer())
        self.conns.add(conn)
        return conn

    async def _serve(self, conn: Conn, on_text: Any) -> None:
        ws = conn.ws
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING:
                    if not conn.stalled:
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.TEXT and not conn.stalled:
                    await on_text(conn, msg.data)
        except ConnectionError as exc:
            logger.debug("sim ws {} ended: {!r}", conn.kind, exc)
        finally:
            conn.closed = True
            conn.ready.set()
            self.conns.discard(conn)
            for account, sub in conn.subs.values():
                self.core.remove_user_sub(account, sub)
            for stream in conn.streams:
                self.core.remove_market_sink(stream, conn)
            if conn.writer is not None:
                conn.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.writer

    # ------------------------------------------------------------------ WS API
    async def ws_api(self, request: web.BaseRequest) -> web.StreamResponse:
        """``/ws-api/v3``: request/response frames and wrapped user-data events."""
        conn = await self._open(request, "ws-api")
        if not isinstance(conn, Conn):
            return conn
        await self._serve(conn, self._ws_request)
        return conn.ws

    def _reply(self, conn: Conn, req_id: Any, result: Any = None, error: SimError | None = None) -> None:
        out: dict[str, Any] = {"id": req_id, "status": 200 if error is None else error.status}
        if error is None:
            out["result"] = result
        else:
            out["error"] = error.body()
        if conn.return_rate_limits:
            rl = self.core.config.rate_limits
            out["rateLimits"] = [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": rl.request_weight_per_minute,
                    "count": self.core.limiter.used_weight(conn.ip, self.core.now()),
                }
            ]
        conn.push(orjson.dumps(out))

    async def _ws_request(self, conn: Conn, data: str) -> None:
        core = self.core
        try:
            req = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._reply(conn, None, error=SimError(400, -1100, "Illegal characters found in a parameter."))
            return
        if not isinstance(req, dict):
            self._reply(conn, None, error=SimError(400, -1100, "Illegal characters found in a parameter."))
            return
        req_id = req.get("id")
        method = req.get("method")
        params = req.get("params") or {}
        now = core.now()
        if not isinstance(params, dict):
            self._reply(
                conn,
                req_id,
                error=SimError(400, -1102, "Mandatory parameter 'params' was not sent, was empty/null, or malformed."),
            )
            return
        weight = _WEIGHTS.get(str(method), 1)
        try:
            if core.faults.entries:
                for f in core.faults.take("ws-api", _WS_FAULTS, now, str(method)):
                    if f.kind == "latency":
                        await asyncio.sleep(f.latency_ms / 1000)
                        now = core.now()
                    elif method == "userDataStream.subscribe.signature":
                        raise throttled(SimError(f.status, f.code, f.msg), now, now + f.retry_after * 1000)
            self._charge(conn, weight, now)
            if method == "userDataStream.subscribe.signature":
                result: Any = self._subscribe(conn, params, now)
            elif method == "userDataStream.unsubscribe":
                self._unsubscribe(conn, params, req_id)
                return
            elif method == "session.subscriptions":
                result = [{"subscriptionId": sid} for sid in sorted(conn.subs)]
            elif method == "session.status":
                result = {"userDataStream": bool(conn.subs), "serverTime": now}
            elif method == "ping":
                result = {}
            elif method == "time":
                result = {"serverTime": now}
            else:
                raise SimError(400, -1020, "This operation is not supported.")
        except SimError as err:
            self._reply(conn, req_id, error=err)
            return
        self._reply(conn, req_id, result)

    def _charge(self, conn: Conn, weight: int, now: int) -> None:
        """Admit a request's weight against the IP's limit (shared with REST) and charge it, or raise the 429/418
        (the weight of a refused request is not charged). The connection whose request earns a ban is closed once
        the answer is out: "an automated IP ban and you will be disconnected"."""
        limiter = self.core.limiter
        banned_before = limiter.banned_until(conn.ip, now)
        try:
            limiter.check_weight(conn.ip, weight, now)
        except SimError as err:
            if err.status == 418 and not banned_before:
                logger.info("sim banned {} after WS API requests over the weight limit: disconnecting", conn.ip)
                conn.close_when_drained = _BAN_CLOSE_CODE
            raise throttled(err, now, limiter.retry_at(conn.ip, now)) from None
        limiter.add_weight(conn.ip, weight, now)

    def _subscribe(self, conn: Conn, params: dict[str, Any], now: int) -> dict[str, int]:
        core = self.core
        key = params.get("apiKey")
        if not isinstance(key, str) or not valid_key_format(key):
            raise SimError(401, -2014, "API-key format invalid.")
        account = core.by_key.get(key)
        if account is None:
            raise SimError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        sig = params.get("signature")
        if not isinstance(sig, str) or not sig:
            raise bad_param("signature")
        ts = params.get("timestamp")
        rw = params.get("recvWindow")
        check_timestamp(None if ts is None else str(ts), None if rw is None else str(rw), now)
        payload = "&".join(f"{k}={_ws_value(v)}" for k, v in sorted(params.items()) if k != "signature")
        if not core.verifiers[key].verify(payload.encode(), sig, url_encoded=False):
            raise SimError(400, -1022, "Signature for this request is not valid.")
        if any(acc == account.name for acc, _ in conn.subs.values()):
            raise SimError(400, -2035, "User Data Stream subscription already active.")
        if conn.next_sid >= _MAX_LIFETIME_SUBS or len(conn.subs) >= _MAX_ACTIVE_SUBS:
            raise SimError(400, -2042, "Maximum subscription ID reached for this connection.")
        sid = conn.next_sid
        conn.next_sid += 1
        sub = UserSub(conn, sid)
        conn.subs[sid] = (account.name, sub)
        core.add_user_sub(account.name, sub)
        logger.info("sim user data subscription {} for {}", sid, account.name)
        return {"subscriptionId": sid}

    def _unsubscribe(self, conn: Conn, params: dict[str, Any], req_id: Any) -> None:
        sid = params.get("subscriptionId")
        if sid is None:
            targets = sorted(conn.subs)
        elif isinstance(sid, int) and sid in conn.subs:
            targets = [sid]
        else:
            raise SimError(400, -2036, "User Data Stream subscription not active.")
        self._reply(conn, req_id, {})
        for s in targets:
            self.terminate(conn, s)

    def terminate(self, conn: Conn, sid: int) -> None:
        """End one subscription with an ``eventStreamTerminated`` event."""
        account, sub = conn.subs.pop(sid)
        self.core.remove_user_sub(account, sub)
        ev = orjson.dumps({"e": "eventStreamTerminated", "E": self.core.now()})
        conn.push(self.core.frame(sub, ev))

    # ------------------------------------------------------------------ Binance.US listenKey lifetime
    def expire_listen_key(self, key: str) -> int:
        """Expire `key` now (``listenKeyExpired`` on its streams, which then close); returns the streams told."""
        before = self._expired_streams
        self.listen_keys.expire(key)
        return self._expired_streams - before

    def expire_due_listen_keys(self) -> list[str]:
        """Expire the listenKeys whose 60 minutes since creation or keepalive are over (simulator clock)."""
        return self.listen_keys.expire_due(self.core.now())

    def _listen_key_expired(self, key: str, account: str) -> None:
        # Each stream on the key gets listenKeyExpired and nothing after it; the server then closes it.
        now = self.core.now()
        event = orjson.dumps({"e": "listenKeyExpired", "E": now, "listenKey": key})
        told = 0
        for conn, subs in self._end_key_subs(key):
            for sub in subs:
                conn.push(self.core.frame(sub, event))
            conn.close_when_drained = 1000
            conn.ready.set()
            told += 1
        self._expired_streams += told
        self.core.faults.note("listen_key_expired", f"user:{account}", now, f"{told} stream(s)")
        logger.info("sim listenKey of {} expired; {} stream(s) told", account, told)

    def _listen_key_closed(self, key: str, account: str) -> None:
        # A DELETE ends the key for everyone: its streams stay open but carry no event any more (no word of it).
        self._end_key_subs(key)
        logger.info("sim listenKey of {} closed (DELETE)", account)

    def _end_key_subs(self, key: str) -> list[tuple[Conn, list[Any]]]:
        """End every subscription of the streams on listenKey `key`: each such stream with the ones it had."""
        ended = []
        for conn in list(self.conns):
            if conn.kind != "listen-key" or conn.path != f"/ws/{key}":
                continue
            subs = []
            for sid, (name, sub) in list(conn.subs.items()):
                del conn.subs[sid]
                self.core.remove_user_sub(name, sub)
                subs.append(sub)
            ended.append((conn, subs))
        return ended

    def _arm_sweep(self) -> None:
        # Expiry needs no request to happen: look for due keys while there are any (on the simulator's clock,
        # which a test may move by hand: hence a short real-time period rather than a timer at the deadline).
        if self._sweep is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a key added off the loop (a test): it expires when next looked at
            return
        self._sweep = loop.call_later(_SWEEP_S, self._sweep_due)

    def _sweep_due(self) -> None:
        self._sweep = None
        self.expire_due_listen_keys()
        if self.listen_keys:
            self._arm_sweep()

    # ------------------------------------------------------------------ market and listenKey streams
    async def market(self, request: web.BaseRequest) -> web.StreamResponse:
        """``/ws/<stream>[/<stream>…]``, ``/stream?streams=…`` and (Binance.US) ``/ws/<listenKey>``."""
        core = self.core
        combined = request.path.startswith("/stream")
        raw = request.query.get("streams", "") if combined else request.path[len("/ws/") :]
        names = [n for n in raw.split("/") if n]
        account = None
        if not combined and len(names) == 1 and names[0] in core.listen_keys:
            account = core.listen_keys[names[0]]
        if account is not None:
            conn = await self._open(request, "listen-key")
            if not isinstance(conn, Conn):
                return conn
            sub = UserSub(conn, None)
            conn.subs[0] = (account, sub)
            core.add_user_sub(account, sub)
            await self._serve(conn, self._market_request)
            return conn.ws
        conn = await self._open(request, "market")
        if not isinstance(conn, Conn):
            return conn
        conn.wrapped = combined
        self._add_streams(conn, names)
        await self._serve(conn, self._market_request)
        return conn.ws

    def _known(self, stream: str) -> bool:
        sym, _, kind = stream.partition("@")
        return kind in ("bookTicker", "trade") and sym.upper() in self.core.exchange.specs

    def _add_streams(self, conn: Conn, names: list[str]) -> None:
        for name in names:
            if not self._known(name) or name in conn.streams:
                continue
            conn.streams.add(name)
            self.core.add_market_sink(name, conn)
            if name.endswith("@bookTicker"):
                data = orjson.dumps(self.core.exchange.book_ticker(name.partition("@")[0].upper()))
                conn.push(b'{"stream":"' + name.encode() + b'","data":' + data + b"}" if conn.wrapped else data)

    async def _market_request(self, conn: Conn, data: str) -> None:
        try:
            req = orjson.loads(data)
        except orjson.JSONDecodeError:
            conn.push(orjson.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
            return
        req_id = req.get("id") if isinstance(req, dict) else None
        method = req.get("method") if isinstance(req, dict) else None
        params = (req.get("params") or []) if isinstance(req, dict) else []
        if not isinstance(params, list):
            params = []
        if self.core.faults.entries and self.core.faults.take(
            "market", frozenset({"reject_subscribe"}), self.core.now(), str(method)
        ):
            # As Binance's market streams answer a refused request: `code` and `msg` at the top, no `error` wrapper
            # (its "Error Messages" table: {"code": 2, "msg": "Invalid request: …"}).
            conn.push(orjson.dumps({"code": 2, "msg": "Invalid request: request refused", "id": req_id}))
            return
        if method == "SUBSCRIBE":
            conn.push(orjson.dumps({"result": None, "id": req_id}))
            self._add_streams(conn, [str(p) for p in params])
        elif method == "UNSUBSCRIBE":
            for name in params:
                conn.streams.discard(str(name))
                self.core.remove_market_sink(str(name), conn)
            conn.push(orjson.dumps({"result": None, "id": req_id}))
        elif method == "LIST_SUBSCRIPTIONS":
            conn.push(orjson.dumps({"result": sorted(conn.streams), "id": req_id}))
        else:
            conn.push(orjson.dumps({"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": req_id}))
