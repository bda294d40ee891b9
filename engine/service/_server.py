"""`ControlApi`: serves the control API from a thread of its own with its own asyncio loop.

The engine's actors and the daemon's main thread never run on this loop, so a slow HTTP client cannot delay
order handling, and stopping the server is an ordinary call from the main thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import socket
import threading
from typing import TYPE_CHECKING, Any

import pykka
from aiohttp import web
from loguru import logger

from engine.service._app import ApiState, EventHub, build_app

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from engine.api import Engine

__all__ = ["ControlApi", "bind_listener"]

_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 10.0
_BIND_ATTEMPTS = 5


class ControlApi:
    """The HTTP control API of one engine.

    ```python
    api = ControlApi(engine, token)
    url = api.start("127.0.0.1", 0)   # bound URL (port 0 picks a free port)
    ...
    api.stop()
    ```
    """

    def __init__(self, engine: Engine, token: str) -> None:
        self.hub = EventHub()
        self.state = ApiState(engine, token, self.hub)
        self._engine = engine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.url = ""

    def start(self, host: str, port: int, socks: Sequence[socket.socket] = ()) -> str:
        """Bind and serve; returns the URL. Raises OSError when the address cannot be bound.

        `socks`: sockets already bound with `bind_listener` (the daemon binds before it starts the engine, so a
        taken port stops it before crash recovery resumes anything); served as they are, `host`/`port` name them.
        """
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()
        args = (host, port, ready, tuple(socks))
        self._thread = threading.Thread(target=self._serve, args=args, name="control-api", daemon=True)
        self._thread.start()
        self.url = ready.result(_START_TIMEOUT_S)
        self._unsubscribe = self._engine.subscribe(self.state.on_event)
        logger.bind(url=self.url).info("control API listening")
        return self.url

    def _serve(
        self, host: str, port: int, ready: concurrent.futures.Future[str], socks: tuple[socket.socket, ...]
    ) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self.hub.bind(loop)
        try:
            bound = loop.run_until_complete(self._bind(host, port, socks))
        except (OSError, RuntimeError) as exc:
            ready.set_exception(exc)
            loop.close()
            return
        ready.set_result(bound)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _bind(self, host: str, port: int, socks: tuple[socket.socket, ...]) -> str:
        self._runner = web.AppRunner(build_app(self.state), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        sites: list[web.BaseSite] = [web.SockSite(self._runner, sock) for sock in socks]
        sites = sites or [web.TCPSite(self._runner, host, port)]
        for site in sites:
            await site.start()
        # With port 0 the OS picks the port: read back what was bound.
        addresses = self._runner.addresses
        actual = int(addresses[0][1]) if addresses else port
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{actual}"

    def drain(self) -> None:
        """Refuse new orders (`shutting_down`) while the engine stops; reads and watchers keep working."""
        self.state.draining = True

    def stop(self) -> None:
        """End watchers' streams, stop serving and join the thread."""
        if self._unsubscribe is not None:
            try:
                self._unsubscribe()
            except (pykka.ActorDeadError, TimeoutError) as exc:  # the engine may be stopped; the server must not
                logger.debug("control API: unsubscribe failed ({})", type(exc).__name__)
            self._unsubscribe = None
        loop, runner = self._loop, self._runner
        if loop is None or runner is None or loop.is_closed():
            return

        async def _shutdown() -> None:
            self.hub.close()
            await runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(_shutdown(), loop).result(_STOP_TIMEOUT_S)
        except (TimeoutError, concurrent.futures.TimeoutError):
            logger.warning("control API: shutdown took longer than {} s", _STOP_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(_STOP_TIMEOUT_S)
        logger.info("control API stopped")


def bind_listener(host: str, port: int) -> list[socket.socket]:
    """TCP sockets bound to every address `host` resolves to, all on one port (port 0: a free one), for
    `ControlApi.start`: ``localhost`` listed as both ::1 and 127.0.0.1 answers clients of either family.

    An address this machine cannot bind (an IPv6 ::1 without IPv6), first or not, is skipped with a warning, as
    long as one address is bound.

    Raises:
        OSError: an address cannot be bound (the port is taken, the host is not local).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses = list(dict.fromkeys((family, address) for family, _, _, _, address in infos))
    for _ in range(_BIND_ATTEMPTS - 1 if port == 0 else 0):
        try:
            return _bind_all(addresses)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:  # the port picked for the first address was taken for another
                raise
    return _bind_all(addresses)


def _bind_all(addresses: Sequence[tuple[int, Any]]) -> list[socket.socket]:
    socks: list[socket.socket] = []
    unusable: OSError | None = None
    try:
        for family, address in addresses:
            # The first one bound picks the port when it is 0; the others take the same one.
            at = (address[0], socks[0].getsockname()[1], *address[2:]) if socks else address
            try:
                socks.append(socket.create_server(at, family=family))
            except OSError as exc:
                if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    logger.warning("control API: {} cannot be bound on this machine, skipped: {}", at[0], exc)
                    unusable = exc
                    continue
                raise
        if not socks and unusable is not None:
            raise unusable
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks
