"""The design card's actor layout rebuilt from bare parts, with none of the engine's logic (a benchmark floor).

The caller tells a pykka pair actor, which tells a pykka persistence actor (one single-row commit on the engine's
database, as the floor's) and hands the create to an asyncio loop thread owning one ccxt client; the
create waits there for the commit (the write-ahead gate), goes out, and its answer is told back to the pair
actor, which sets the caller's future. No validation, no book, no rate budget, no records beyond the one row:
what this costs above the floor (one commit, then the create, in one thread: `_interleave.RawSerial`) is the
price of the layout itself (thread hand-offs on one interpreter lock), not of the engine's code.
`bench/order_latency.py` measures it next to the engine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from collections.abc import Callable
from typing import Any

import pykka
from _interleave import RawCommit

__all__ = ["BareFleet", "BarePipeline"]


class _Store(pykka.ThreadingActor):
    """Owns one database connection; one single-row commit per message (as the floor's), then opens the gate."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._commit: RawCommit | None = None

    def on_start(self) -> None:
        self._commit = RawCommit(self._url + ".bare" if self._url.startswith("sqlite") else self._url)

    def on_stop(self) -> None:
        assert self._commit is not None
        self._commit.close()

    def write_ahead(self, loop: asyncio.AbstractEventLoop, gate: asyncio.Future[None]) -> None:
        assert self._commit is not None
        self._commit.run(1)
        loop.call_soon_threadsafe(gate.set_result, None)


class _Pair(pykka.ThreadingActor):
    """Tells the store, hands the gated create to the loop, answers the caller when the result comes back."""

    def __init__(self, store: Any, loop: asyncio.AbstractEventLoop, client: Any, market: str = "BTC/USDT") -> None:
        super().__init__()
        self._store, self._loop, self._client, self._market = store, loop, client, market
        self._waiting: dict[str, concurrent.futures.Future[Any]] = {}
        self._me: Any = None

    def on_start(self) -> None:
        self._me = self.actor_ref.proxy()

    def place(self, args: tuple[str, str, str], future: concurrent.futures.Future[Any]) -> None:
        cid = f"floor-{uuid.uuid4().hex[:20]}"
        self._waiting[cid] = future
        gate: asyncio.Future[None] = self._loop.create_future()  # only awaited/set on the loop thread
        self._store.write_ahead.defer(self._loop, gate)
        me, client, market = self._me, self._client, self._market

        async def create() -> None:
            await gate
            side, qty, price = args
            order = await client.create_order(market, "limit", side, qty, price, {"newClientOrderId": cid})
            me.on_result.defer(cid, order)

        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(create()))

    def on_result(self, cid: str, order: dict[str, Any]) -> None:
        self._waiting.pop(cid).set_result(order)


class BarePipeline:
    """The bare actor layout, started once; `run(n)` places `n` orders one after the other (seconds each)."""

    def __init__(self, url: str, loop_thread: Any, client: Any, args: Callable[[int], tuple[str, str, str]]) -> None:
        self._args = args
        self._store = _Store.start(url)
        self._pair = _Pair.start(self._store.proxy(), loop_thread.loop, client)
        self._proxy = self._pair.proxy()
        self._i = 0

    def run(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            args = self._args(self._i)
            self._i += 1
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            start = time.perf_counter()
            self._proxy.place.defer(args, future)
            future.result(timeout=30)
            out.append(time.perf_counter() - start)
        return out

    def stop(self) -> None:
        self._pair.stop()
        self._store.stop()


class BareFleet:
    """The bare layout for many pairs: one store actor, one pair actor per market, one ccxt client (a floor for
    the 20-pair throughput run, as `BarePipeline` is for latency)."""

    def __init__(self, url: str, loop_thread: Any, client: Any, markets: list[str]) -> None:
        self._store = _Store.start(url)
        self._pairs = {m: _Pair.start(self._store.proxy(), loop_thread.loop, client, m) for m in markets}
        self._proxies = {m: ref.proxy() for m, ref in self._pairs.items()}

    def place(self, market: str, args: tuple[str, str, str]) -> concurrent.futures.Future[Any]:
        """One order on `market`; the future resolves with ccxt's order once the exchange answered."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._proxies[market].place.defer(args, future)
        return future

    def stop(self) -> None:
        for ref in self._pairs.values():
            ref.stop()
        self._store.stop()
