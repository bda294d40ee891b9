"""The simulator process shell: aiohttp app on its own loop thread, with URLs and the control API."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType

from aiohttp import web
from loguru import logger

from sim._config import AccountSpec, SimConfig
from sim._control import Control, ControlOps, register_control_routes
from sim._core import Clock, SimCore, wall_clock_ms
from sim._dispatch import Dispatcher
from sim._feed import PriceFeed
from sim._price import PriceSource
from sim._rest import RestApi
from sim._ws import WsLayer

__all__ = ["SimUrls", "Simulator"]


@dataclass(frozen=True)
class SimUrls:
    """Where the simulator listens."""

    rest: str
    ws_api: str
    stream: str


class Simulator:
    """Binance Spot on loopback: REST, WS API and market streams on one port, in a daemon thread.

    Usage::

        with Simulator(SimConfig(seed=1)) as sim:
            sim.urls.rest, sim.accounts[0].api_key, sim.control.set_price("BTCUSDT", "60000")

    The market moves by the seeded random walk (``market_tick_interval_s``), or — with ``price_feed`` — only
    by the quotes the feed pushes (e.g. ``PublicPriceFeed``: a real venue's public prices, for paper trading).
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        clock: Clock | None = None,
        price_source: PriceSource | None = None,
        price_feed: PriceFeed | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config or SimConfig()
        self.core = SimCore(self.config, clock or wall_clock_ms, price_source)
        self.ws = WsLayer(self.core)
        self.ops = ControlOps(self.core, self.ws)
        self._host = host
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.ServerRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._mover: asyncio.Task[None] | None = None
        self.price_feed = price_feed
        self._feed_task: asyncio.Task[None] | None = None
        self._control: Control | None = None
        self.port = 0

    @property
    def accounts(self) -> list[AccountSpec]:
        """The configured accounts with their keys."""
        return list(self.config.accounts)

    @property
    def urls(self) -> SimUrls:
        """REST base, WS API URL and market stream base."""
        base = f"{self._host}:{self.port}"
        return SimUrls(rest=f"http://{base}", ws_api=f"ws://{base}/ws-api/v3", stream=f"ws://{base}/")

    @property
    def control(self) -> Control:
        """The thread-safe control API (available once started)."""
        if self._control is None:
            raise RuntimeError("simulator not started")
        return self._control

    def build_handler(self) -> Dispatcher:
        """The request handler (REST + WS + ``/_sim/`` control) for aiohttp's low-level server."""
        dispatcher = Dispatcher()
        if self.core.request_log is not None:
            dispatcher.on_request = self.core.record_request
        RestApi(self.core).register(dispatcher)
        self.ws.register(dispatcher)
        register_control_routes(dispatcher, self.ops)
        return dispatcher

    def start(self) -> Simulator:
        """Start the loop thread and bind; returns once the port is known."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._thread_main, name="binance-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("simulator did not start within 15 s")
        if self._error is not None:
            raise RuntimeError(f"simulator failed to start: {self._error!r}") from self._error
        logger.info("sim listening on {} (seed {})", self.urls.rest, self.config.seed)
        return self

    def stop(self) -> None:
        """Close every connection, stop the loop and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                fut.result(10)
            except TimeoutError:
                logger.warning("sim shutdown timed out")
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None
        self._control = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ loop thread
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._startup())
        except (OSError, RuntimeError) as exc:
            logger.error("sim failed to start: {!r}", exc)
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._control = Control(self.ops, loop, threading.get_ident())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            # Handlers still sleeping (withheld responses, latency faults) are cancelled, not leaked.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self) -> None:
        server = web.Server(self.build_handler(), access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        listener = site._server
        assert isinstance(listener, asyncio.base_events.Server)
        self.port = listener.sockets[0].getsockname()[1]
        if self.price_feed is not None:
            # An external feed is the only thing that moves the market: no random walk on top of it.
            self._feed_task = asyncio.get_running_loop().create_task(self._run_feed(self.price_feed))
        elif self.config.market_tick_interval_s > 0:
            self._mover = asyncio.get_running_loop().create_task(self._move_market())

    async def _run_feed(self, feed: PriceFeed) -> None:
        try:
            await feed.run(_BookSink(self.core))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a broken feed freezes the book; the exchange keeps serving
            logger.exception("sim price feed stopped: the book is frozen at the last prices")

    async def _move_market(self) -> None:
        interval = self.config.market_tick_interval_s
        while True:
            await asyncio.sleep(interval)
            self.core.exchange.step(1, self.core.now())
            self.core.flush()

    async def _shutdown(self) -> None:
        for task in (self._mover, self._feed_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for conn in list(self.ws.conns):
            conn.closed = True
            with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"simulator stopping"), 2)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class _BookSink:
    """Quotes from a feed into the exchange's book (on the simulator's loop), then out to the streams."""

    def __init__(self, core: SimCore) -> None:
        self._core = core

    def set_quote(
        self, symbol: str, bid: Decimal, ask: Decimal, *, bid_qty: Decimal | None = None, ask_qty: Decimal | None = None
    ) -> None:
        core = self._core
        core.exchange.set_quote(symbol, bid, ask, core.now(), bid_qty=bid_qty, ask_qty=ask_qty)
        core.flush()
