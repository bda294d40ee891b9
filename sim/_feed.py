"""Price feeds that drive the simulator's book from outside: a real venue's public prices for paper trading.

A feed runs on the simulator's loop (``Simulator(price_feed=...)``) and pushes best bid/ask quotes into the
book, with the venue's quantities at those prices when the sink takes them (``SizedQuoteSink``); resting paper
orders fill when a quote moves through them. ``PublicPriceFeed`` reads the venue's
*public* market data only — ``GET /api/v3/ticker/bookTicker`` and the ``<symbol>@bookTicker`` streams — and
never holds an API key: it cannot sign, so nothing it sends can act on an account.

Failures are reported, never raised: every error is logged with the retry delay (exponential backoff with
jitter), and when no price has been observed for ``stale_after_s`` the feed logs that the paper book is frozen
at the last prices; it logs again when prices flow. ``status()`` / ``wait_for()`` expose the same to code.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

import aiohttp
import orjson
from loguru import logger
from yarl import URL

from sim._feed_base import (
    Backoff,
    FeedError,
    FeedStatus,
    PriceFeed,
    Quote,
    QuoteSink,
    SizedQuoteSink,
    _http_error,
    _price,
    _symbols_query,
    parse_book_tickers,
    parse_qty,
    takes_sizes,
)

__all__ = [
    "Backoff",
    "FeedError",
    "FeedStatus",
    "PriceFeed",
    "PublicMarket",
    "PublicPriceFeed",
    "Quote",
    "QuoteSink",
    "SizedQuoteSink",
]

# Public market data only: no key header, no signature, nothing that names an account.
_HEADERS = {"Accept": "application/json", "User-Agent": "bexec-paper-feed/1"}
_BOOK_TICKER = "/api/v3/ticker/bookTicker"
_EXCHANGE_INFO = "/api/v3/exchangeInfo"


# ---------------------------------------------------------------------------------------------- start-up snapshot
@dataclass(frozen=True)
class PublicMarket:
    """What a venue's public REST API says about some symbols at one moment."""

    symbol_info: Mapping[str, Mapping[str, Any]]
    quotes: Mapping[str, Quote]

    @classmethod
    def fetch(cls, rest_url: str, symbols: Sequence[str], timeout_s: float = 10.0) -> PublicMarket:  # float-ok
        """Read the venue's exchangeInfo entries and best bid/ask of ``symbols`` (two unsigned GETs, blocking).

        Raises:
            FeedError: the venue is unreachable, answers an error, or does not list one of the symbols.
        """
        return _fetch_public_market(rest_url, symbols, timeout_s)


def _get(url: str, what: str, timeout_s: float) -> bytes:  # float-ok: seconds
    # No proxy from the environment either: the request goes to the configured venue and nowhere else.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=_HEADERS, method="GET")
    try:
        with opener.open(request, timeout=timeout_s) as resp:
            body: bytes = resp.read()
            return body
    except urllib.error.HTTPError as exc:
        raise _http_error(what, exc.code, exc.read(), exc.headers.get("Retry-After")) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FeedError(f"{what} failed: {reason}") from None


def _fetch_public_market(rest_url: str, symbols: Sequence[str], timeout_s: float) -> PublicMarket:  # float-ok
    base = rest_url.rstrip("/")
    wanted = [s.upper() for s in symbols]
    query = _symbols_query(wanted)
    info_body = _get(f"{base}{_EXCHANGE_INFO}?{query}", f"GET {base}{_EXCHANGE_INFO}", timeout_s)
    try:
        info = orjson.loads(info_body)
    except orjson.JSONDecodeError:
        raise FeedError("exchangeInfo answered with a body that is not JSON") from None
    entries = {str(s.get("symbol")): s for s in info.get("symbols", []) if isinstance(s, dict)}
    missing = [s for s in wanted if s not in entries]
    if missing:
        raise FeedError(f"{base} does not list {', '.join(missing)} in exchangeInfo")
    quotes = parse_book_tickers(_get(f"{base}{_BOOK_TICKER}?{query}", f"GET {base}{_BOOK_TICKER}", timeout_s), wanted)
    return PublicMarket(symbol_info={s: entries[s] for s in wanted}, quotes=quotes)


# ---------------------------------------------------------------------------------------------- the feed
class PublicPriceFeed:
    """A venue's public best bid/ask, polled over REST or streamed, pushed into the simulator's book.

    Args:
        rest_url: The venue's REST base (``https://api.binance.com``); bookTicker snapshots come from here.
        symbols: Exchange symbols to follow.
        stream_url: The venue's market-stream base (``wss://stream.binance.com:9443/``); needed for ``ws``.
        transport: ``ws`` streams ``<symbol>@bookTicker`` (a REST snapshot on every connect and whenever the
            stream is quiet for ``stale_after_s``); ``rest`` polls every ``poll_interval_s``.
        stale_after_s: No price observed for this long → the paper book is reported frozen.
        backoff_initial_s / backoff_max_s: Retry delays after a failure (doubling, with jitter).
        request_timeout_s: Per REST request.
        initial: Quotes already fetched (`PublicMarket.fetch`), applied the moment the feed starts.
        venue: A name for log lines (default: the REST host).
        seed: Seed of the retry jitter; pass the simulator's ``SimConfig.seed`` (the default is SimConfig's) so a
            run is reproducible from its seed like the rest of the simulator.
    """

    def __init__(
        self,
        rest_url: str,
        symbols: Sequence[str],
        *,
        stream_url: str | None = None,
        transport: Literal["ws", "rest"] = "ws",
        poll_interval_s: float = 1.0,  # float-ok: seconds
        stale_after_s: float = 10.0,  # float-ok: seconds
        backoff_initial_s: float = 0.5,  # float-ok: seconds
        backoff_max_s: float = 30.0,  # float-ok: seconds
        request_timeout_s: float = 10.0,  # float-ok: seconds
        initial: Mapping[str, Quote] | None = None,
        venue: str | None = None,
        seed: int = 42,
    ) -> None:
        if transport == "ws" and not stream_url:
            raise ValueError("the ws transport needs the venue's stream_url")
        if not symbols:
            raise ValueError("at least one symbol is needed")
        if poll_interval_s <= 0 or stale_after_s <= 0 or request_timeout_s <= 0:
            raise ValueError("poll_interval_s, stale_after_s and request_timeout_s must be positive")
        if transport == "rest" and poll_interval_s >= stale_after_s:
            raise ValueError("poll_interval_s must be shorter than stale_after_s, or every poll would look stale")
        self.rest_url = rest_url.rstrip("/")
        self.stream_url = stream_url
        self.symbols = tuple(s.upper() for s in symbols)
        self.transport = transport
        self.venue = venue or (urllib.parse.urlsplit(self.rest_url).hostname or self.rest_url)
        self._poll_interval = poll_interval_s
        self._stale_after = stale_after_s
        self._timeout = request_timeout_s
        self.seed = seed
        self._backoff = Backoff(backoff_initial_s, backoff_max_s, random.Random(f"{seed}:feed-backoff"))
        self._initial = dict(initial or {})
        self._cond = threading.Condition()
        self._status = FeedStatus()
        self._last_ok: float | None = None  # loop time
        self._started = 0.0
        self._stale_logged = False
        self._sized = False  # whether the running sink takes the venue's quantities (set by `run`)

    # ---- observation --------------------------------------------------------------------------------
    def status(self) -> FeedStatus:
        """The current status (a frozen snapshot; safe from any thread)."""
        with self._cond:
            return self._status

    def wait_for(self, predicate: Callable[[FeedStatus], bool], timeout: float) -> bool:  # float-ok: seconds
        """Block until ``predicate(status)`` holds (re-checked on every change); False after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._status), timeout)

    def _set(self, **changes: Any) -> None:
        with self._cond:
            self._status = replace(self._status, **changes)
            self._cond.notify_all()

    # ---- life cycle ---------------------------------------------------------------------------------
    async def run(self, sink: QuoteSink) -> None:
        """Follow the venue until cancelled (the simulator cancels it when it stops)."""
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        self._sized = takes_sizes(sink)
        if self._initial:
            for sym, quote in self._initial.items():
                self._apply(sink, sym, quote)
            self._ok()
        logger.info(
            "paper price feed: following {} on {} over {} (public market data only, no API key)",
            ",".join(self.symbols),
            self.venue,
            self.transport,
        )
        watchdog = loop.create_task(self._watch())
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with aiohttp.ClientSession(headers=_HEADERS, timeout=timeout) as session:
                if self.transport == "rest":
                    await self._poll_loop(session, sink)
                else:
                    await self._ws_loop(session, sink)
        finally:
            watchdog.cancel()
            self._set(connected=False)

    async def _poll_loop(self, session: aiohttp.ClientSession, sink: QuoteSink) -> None:
        while True:
            try:
                await self._snapshot(session, sink)
                self._backoff.reset()
                self._set(connected=True)
                delay = self._poll_interval
            except (aiohttp.ClientError, TimeoutError, OSError, FeedError) as exc:
                delay = self._failed(exc)
                self._set(connected=False)
            await asyncio.sleep(delay)

    async def _ws_loop(self, session: aiohttp.ClientSession, sink: QuoteSink) -> None:
        assert self.stream_url is not None
        streams = "/".join(f"{s.lower()}@bookTicker" for s in self.symbols)
        url = f"{self.stream_url.rstrip('/')}/stream?streams={streams}"
        # Client pings find a dead or stalled connection well before prices are reported stale.
        heartbeat = max(min(self._stale_after / 2, 10.0), 0.05)
        while True:
            try:
                async with session.ws_connect(
                    url, heartbeat=heartbeat, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self._timeout)
                ) as ws:
                    self._set(connected=True, connects=self._status.connects + 1)
                    logger.info("paper price feed: stream to {} connected", self.venue)
                    await self._ws_session(ws, session, sink)
            except (aiohttp.ClientError, TimeoutError, OSError, FeedError) as exc:
                delay = self._failed(exc)
            else:  # pragma: no cover - _ws_session only returns by raising
                delay = self._backoff.next()
            self._set(connected=False)
            await asyncio.sleep(delay)

    async def _ws_session(
        self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession, sink: QuoteSink
    ) -> None:
        # A real stream says nothing until the book changes: start from a REST snapshot.
        await self._snapshot_quietly(session, sink)
        while True:
            try:
                msg = await ws.receive(timeout=self._stale_after)
            except TimeoutError:
                # A quiet stream is not an error; REST tells whether the last prices are still current.
                await self._snapshot_quietly(session, sink)
                continue
            if msg.type is aiohttp.WSMsgType.TEXT:
                if self._on_frame(msg.data, sink):
                    self._backoff.reset()
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                raise FeedError(f"the stream was closed by {self.venue} (code {ws.close_code})")
            elif msg.type is aiohttp.WSMsgType.ERROR:
                raise FeedError(f"the stream to {self.venue} failed: {ws.exception()!r}")

    def _on_frame(self, data: str, sink: QuoteSink) -> bool:
        try:
            frame = orjson.loads(data)
            payload = frame.get("data", frame) if isinstance(frame, dict) else None
            if not isinstance(payload, dict) or "s" not in payload:
                return False  # subscription answers and other control frames
            sym = str(payload["s"])
            if sym not in self.symbols:
                return False
            bid = _price(payload.get("b"), f"{sym} b")
            ask = _price(payload.get("a"), f"{sym} a")
            bid_qty = parse_qty(payload.get("B"), f"{sym} B")
            ask_qty = parse_qty(payload.get("A"), f"{sym} A")
        except (orjson.JSONDecodeError, FeedError) as exc:
            self._set(errors=self._status.errors + 1, last_error=f"bad stream frame: {exc}")
            logger.warning("paper price feed: ignoring a bad frame from {}: {}", self.venue, exc)
            return False
        if bid > 0 and ask > 0:
            self._apply(sink, sym, Quote(bid, ask, bid_qty, ask_qty))
        self._ok()
        return True

    async def _snapshot(self, session: aiohttp.ClientSession, sink: QuoteSink) -> None:
        url = URL(f"{self.rest_url}{_BOOK_TICKER}?{_symbols_query(self.symbols)}", encoded=True)
        async with session.get(url) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise _http_error(f"GET {_BOOK_TICKER}", resp.status, body, resp.headers.get("Retry-After"))
        for sym, quote in parse_book_tickers(body, self.symbols).items():
            self._apply(sink, sym, quote)
        self._ok()

    async def _snapshot_quietly(self, session: aiohttp.ClientSession, sink: QuoteSink) -> None:
        try:
            await self._snapshot(session, sink)
        except (aiohttp.ClientError, TimeoutError, OSError, FeedError) as exc:
            self._failed(exc, retry=False)

    # ---- bookkeeping ----------------------------------------------------------------------------------
    def _apply(self, sink: QuoteSink, symbol: str, quote: Quote) -> None:
        last = self._status.quotes.get(symbol)
        if last is not None and (last == quote or (not self._sized and last.prices == quote.prices)):
            # bookTicker frames also come for quantity-only changes: news to a sink that takes the quantities (what
            # paper orders can get at the best price), nothing to one that follows the prices only.
            return
        try:
            if self._sized:
                cast(SizedQuoteSink, sink).set_quote(
                    symbol, quote.bid, quote.ask, bid_qty=quote.bid_qty, ask_qty=quote.ask_qty
                )
            else:
                sink.set_quote(symbol, quote.bid, quote.ask)
        except Exception as exc:  # noqa: BLE001 - one refused quote must not stop the feed
            self._set(errors=self._status.errors + 1, last_error=f"{symbol}: {exc}")
            logger.warning("paper price feed: quote {} {} / {} refused: {}", symbol, quote.bid, quote.ask, exc)
            return
        self._set(quotes={**self._status.quotes, symbol: quote}, updates=self._status.updates + 1)

    def _ok(self) -> None:
        self._last_ok = asyncio.get_running_loop().time()
        if self._stale_logged:
            self._stale_logged = False
            logger.info("paper price feed: public prices from {} flow again; the paper book follows them", self.venue)
        self._set(fresh=True, last_ok_ms=time.time_ns() // 1_000_000)

    def _failed(self, exc: BaseException, *, retry: bool = True) -> float:  # float-ok: seconds
        text = str(exc) or type(exc).__name__
        delay = self._backoff.next() if retry else 0.0
        if retry and isinstance(exc, FeedError) and exc.retry_after_s:
            delay = max(delay, exc.retry_after_s)  # 429/418: the venue says when
        self._set(errors=self._status.errors + 1, last_error=text)
        if retry:
            logger.warning("paper price feed: {} failed: {}; retrying in {:.2f}s", self.venue, text, delay)
        else:
            logger.warning("paper price feed: snapshot from {} failed: {}", self.venue, text)
        return delay

    async def _watch(self) -> None:
        period = min(max(self._stale_after / 4, 0.01), 1.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            age = loop.time() - (self._last_ok if self._last_ok is not None else self._started)
            if age > self._stale_after and not self._stale_logged:
                self._stale_logged = True
                logger.bind(alert="paper_feed").warning(
                    "paper price feed: no public prices from {} for {:.1f}s (last error: {}); the paper book is "
                    "FROZEN at the last prices and paper orders will not fill until prices flow again",
                    self.venue,
                    age,
                    self._status.last_error or "none, the venue is silent",
                )
                self._set(fresh=False)  # after the log line, so whoever waits on the status sees both
