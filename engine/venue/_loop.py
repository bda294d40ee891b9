"""One asyncio event loop in its own thread: the home of the async ccxt client (its single owner)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from loguru import logger

__all__ = ["LoopThread"]

T = TypeVar("T")


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when present (ccxt depends on it): its call_soon, timers and sockets cost a fraction of
    the stock loop's on every request; the stock loop otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - ccxt requires uvloop; kept for a trimmed install
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    """Runs an asyncio loop in a daemon thread; other threads hand it coroutines.

    ccxt's async client is not thread-safe, so every call on it must run on this loop (one owner).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and wait until the loop runs."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"event loop thread {self._name} did not start")

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coro` on the loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call_soon(self, func: Any, *args: Any) -> None:
        """Run a plain callable on the loop thread."""
        self.loop.call_soon_threadsafe(func, *args)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what is still running, stop the loop and join the thread."""
        if not self._thread.is_alive():
            return

        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.submit(_cancel_all()).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            logger.warning("event loop {} did not cancel its tasks cleanly: {}", self._name, exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
