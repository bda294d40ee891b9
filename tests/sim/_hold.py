"""A simulator whose REST answers a test can hold back and release: a withheld response without a wall-clock timer.

The ``withhold`` fault holds a response for ``hold_s`` seconds of wall time, so a test that needs something to
happen *while* an answer is held races that timer: on a slow machine the answer comes first and the test passes
without testing, or fails. `HoldingSimulator.hold` holds the next matching request's answer until the test calls
`Hold.release`: the request is processed (an order is created) first, `Hold.held` is set once it was, and the
answer is written only when released. Nothing else in the simulator changes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

from sim import Simulator

__all__ = ["Hold", "HoldingSimulator"]

_Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Hold:
    """The held answer to one REST request (``method`` and ``path`` exactly, e.g. ``POST /api/v3/order``)."""

    def __init__(self, method: str, path: str) -> None:
        self.method, self.path = method, path
        self.held = threading.Event()
        """Set once the request was processed and its answer is held (any thread may wait on it)."""
        self._lock = threading.Lock()
        self._released = False
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    def wait_held(self, timeout_s: float = 20.0) -> bool:
        """Block until the request reached the simulator and was processed; False if not within `timeout_s`."""
        return self.held.wait(timeout_s)

    def release(self) -> None:
        """Let the answer go (now, or at once when the request comes, if it has not come yet)."""
        with self._lock:
            self._released = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(_resolve, future)

    async def _park(self) -> None:
        """Simulator loop: hold here until released."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if not self._released:
                self._waiter = (loop, future)
        self.held.set()
        if self._waiter is not None:
            await future


class HoldingSimulator(Simulator):
    """The simulator, with `hold` (see module docstring). Every hold still pending is released when it stops."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._holds: list[Hold] = []
        self._holds_lock = threading.Lock()

    def hold(self, method: str, path: str) -> Hold:
        """Hold the answer to the next ``method path`` request (after processing it) until `Hold.release`."""
        hold = Hold(method, path)
        with self._holds_lock:
            self._holds.append(hold)
        return hold

    def _take(self, method: str, path: str) -> Hold | None:
        with self._holds_lock:
            for hold in self._holds:
                if not hold.held.is_set() and (hold.method, hold.path) == (method, path):
                    hold.held.set()  # taken: the next matching request is not held by it
                    return hold
        return None

    def build_handler(self) -> _Handler:  # type: ignore[override]
        """The simulator's handler, holding the answers of the requests a test asked to hold."""
        inner = super().build_handler()

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            response = await inner(request)
            hold = self._take(request.method, request.path)
            if hold is not None:
                await hold._park()  # the hold's own simulator side
            return response

        return handle

    def stop(self) -> None:
        """Release every hold (a failed test must not leave a handler waiting), then stop."""
        with self._holds_lock:
            holds = list(self._holds)
        for hold in holds:
            hold.release()
        super().stop()
