"""Two leaner layouts than the design card's, rebuilt from bare parts like `_bare_layout` (benchmark floors).

They answer the question the order-latency targets raise: could any layout meet them on this machine?

- `LoopLayout` is option (b) of the session notes: the pair's work runs on the gateway's event loop instead of a
  pykka thread per pair. The caller hands the order to the loop; the loop tells a pykka persistence actor (one
  single-row commit, as the floor's), the create waits there for the commit (the write-ahead gate), goes out,
  and the loop sets the caller's future. Four thread hand-offs per order instead of the design card's five.
- `TwoHopLayout` is the least any engine with its own I/O thread can do: the caller hands the order to the
  loop, the loop commits in place (blocking the loop: no engine could afford that, it stalls every other
  pair) and sends the create, then sets the caller's future. Two hand-offs, caller → loop → caller.

The floor itself has no hand-off at all (`_interleave.RawSerial`: the commit, then the create, timed inside the
loop), so `TwoHopLayout`'s distance to it is what the two hand-offs cost.
No validation, no book, no rate budget, no records beyond the one row.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from _bare_layout import _Store
from _interleave import RawCommit

__all__ = ["LoopLayout", "TwoHopLayout"]

OrderArgs = Callable[[int], tuple[str, str, str]]


class _LoopContender(ABC):
    """Places one order at a time from the caller's thread through `self._place` run on the loop thread."""

    def __init__(self, loop_thread: Any, client: Any, args: OrderArgs, market: str = "BTC/USDT") -> None:
        self._loop: asyncio.AbstractEventLoop = loop_thread.loop
        self._client, self._args, self._market = client, args, market
        self._i = 0

    @abstractmethod
    def _place(self, args: tuple[str, str, str], future: concurrent.futures.Future[Any]) -> None:
        """The layout's own path for one order, run on the loop thread; it sets `future` at the ack."""

    def run(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            args = self._args(self._i)
            self._i += 1
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            start = time.perf_counter()
            self._loop.call_soon_threadsafe(self._place, args, future)
            future.result(timeout=30)
            out.append(time.perf_counter() - start)
        return out

    async def _create(self, args: tuple[str, str, str], future: concurrent.futures.Future[Any]) -> None:
        side, qty, price = args
        cid = f"floor-{uuid.uuid4().hex[:20]}"
        try:
            order = await self._client.create_order(self._market, "limit", side, qty, price, {"newClientOrderId": cid})
        except Exception as exc:
            future.set_exception(exc)
            return
        future.set_result(order)


class LoopLayout(_LoopContender):
    """Option (b), bare: the pair's work on the event loop, the commit on a pykka persistence actor."""

    def __init__(self, url: str, loop_thread: Any, client: Any, args: OrderArgs) -> None:
        super().__init__(loop_thread, client, args)
        self._store_ref = _Store.start(url)
        self._store = self._store_ref.proxy()

    def _place(self, args: tuple[str, str, str], future: concurrent.futures.Future[Any]) -> None:
        gate: asyncio.Future[None] = self._loop.create_future()
        self._store.write_ahead.defer(self._loop, gate)

        async def gated() -> None:
            await gate
            await self._create(args, future)

        self._loop.create_task(gated())

    def stop(self) -> None:
        self._store_ref.stop()


class TwoHopLayout(_LoopContender):
    """The least an engine with its own I/O thread can do: caller → loop (commit in place, create) → caller."""

    def __init__(self, url: str, loop_thread: Any, client: Any, args: OrderArgs) -> None:
        super().__init__(loop_thread, client, args)
        self._commit = RawCommit(url + ".twohop" if url.startswith("sqlite") else url)

    def _place(self, args: tuple[str, str, str], future: concurrent.futures.Future[Any]) -> None:
        self._commit.run(1)  # on the loop thread, blocking it: a floor, not a design
        self._loop.create_task(self._create(args, future))

    def stop(self) -> None:
        self._commit.close()  # the runs are over: nothing on the loop uses it any more
