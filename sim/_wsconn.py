"""One WebSocket connection of the simulator: its ordered outgoing queue, writer task and scheduled faults."""

from __future__ import annotations

import asyncio
from collections import deque

from aiohttp import WSMsgType, web
from loguru import logger

from sim._core import UserSub

__all__ = ["Conn"]

_BACKGROUND: set[asyncio.Task[bool]] = set()  # keeps fire-and-forget close tasks alive


class Conn:
    """One WebSocket connection with an ordered outgoing queue drained by its writer task."""

    def __init__(self, ws: web.WebSocketResponse, request: web.BaseRequest, kind: str) -> None:
        self.ws = ws
        self.kind = kind  # "ws-api" | "market" | "listen-key"
        self.path = request.path
        self.transport = request.transport
        self.ip = request.remote or "local"
        self.queue: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.stalled = False
        self.closed = False
        self.wrapped = False
        self.next_sid = 0
        self.subs: dict[int, tuple[str, UserSub]] = {}
        self.streams: set[str] = set()
        self.return_rate_limits = request.query.get("returnRateLimits") != "false"
        self.writer: asyncio.Task[None] | None = None
        self.close_when_drained: int | None = None  # a close code: close once the queued frames are sent
        self.queued = 0  # frames queued, ever
        self.sent = 0  # frames written to the socket, ever
        self._sent_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def push(self, frame: bytes) -> None:
        """Queue a text frame (dropped while stalled: a silent peer sends nothing)."""
        if self.stalled or self.closed:
            return
        self.queue.append(frame)
        self.queued += 1
        self.ready.set()

    async def wait_sent(self) -> None:
        """Return once every frame queued so far is written to the socket (or the connection is gone)."""
        if self.sent >= self.queued or self.closed or self.writer is None or self.writer.done():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sent_waiters.append((self.queued, fut))
        await fut

    def _wake_sent(self, everyone: bool = False) -> None:
        waiting, self._sent_waiters = self._sent_waiters, []
        for target, fut in waiting:
            if everyone or self.sent >= target:
                if not fut.done():
                    fut.set_result(None)
            else:
                self._sent_waiters.append((target, fut))

    def fault(self, kind: str) -> None:
        """Break the connection as a scheduled fault (``ws_close`` | ``ws_abort`` | ``ws_stall``)."""
        logger.info("sim fault {} on a {} connection", kind, self.kind)
        if kind == "ws_stall":
            self.stalled = True
            return
        self.closed = True
        self.ready.set()
        if kind == "ws_abort":
            if self.transport is not None:
                self.transport.abort()
        else:
            task = asyncio.get_running_loop().create_task(self.ws.close(code=1000, message=b"closed by simulator"))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    async def run_writer(self) -> None:
        """Send queued frames in order until the connection closes."""
        try:
            await self._write_loop()
        finally:
            self._wake_sent(everyone=True)  # nothing more will be sent: nobody waits for it

    async def _write_loop(self) -> None:
        ws = self.ws
        while not self.closed:
            await self.ready.wait()
            self.ready.clear()
            queue = self.queue
            while queue and not self.closed:
                frame = queue.popleft()
                try:
                    await ws.send_frame(frame, WSMsgType.TEXT)
                except ConnectionError as exc:
                    logger.debug("sim ws send failed ({}): {}", self.kind, exc)
                    self.closed = True
                    return
                self.sent += 1
                if self._sent_waiters:
                    self._wake_sent()
            if self.close_when_drained is not None and not queue:
                # The last frame (an expiry notice) went out first: the server then closes, as Binance does.
                self.closed = True
                await ws.close(code=self.close_when_drained, message=b"closed by simulator")
                return
