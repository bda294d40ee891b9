"""The contenders of `bench/order_latency.py`, measured in alternating blocks (`RawCommit` also backs `_bare_layout`).

This machine's speed drifts by tens of percent within a minute (two vCPUs, shared): measuring the floor first and
the engine after it compared two different machines, and the same code gave ratios from 1.7 to 2.9 between runs.
`interleaved` runs each contender's orders in short alternating blocks instead, so every contender sees the same
drift and the ratios hold from run to run. Each contender places one order at a time and returns the seconds
each took; `interleaved` also charges the process CPU spent during a contender's blocks to it.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from _order_hops import cpu_seconds

__all__ = [
    "EngineOrders",
    "Measured",
    "RawCcxt",
    "RawCommit",
    "RawSerial",
    "ccxt_client",
    "interleaved",
    "run_in_loop",
]

OrderArgs = Callable[[int], tuple[str, str, str]]
"""Order number → (side, amount, price) of a marketable limit order."""


class Contender(Protocol):
    def run(self, n: int) -> list[float]:
        """Place `n` orders one after the other; the seconds each took."""


class RawCcxt:
    """Raw ccxt async `create_order` on a loop thread, timed inside the loop (no hand-off counted)."""

    def __init__(self, loop_thread: Any, client: Any, symbol: str, args: OrderArgs) -> None:
        self._loop_thread, self._client, self._symbol, self._args = loop_thread, client, symbol, args
        self._i = 0

    async def _orders(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            side, qty, price = self._args(self._i)
            self._i += 1
            cid = f"raw-{uuid.uuid4().hex[:20]}"
            start = time.perf_counter()
            await self._client.create_order(self._symbol, "limit", side, qty, price, {"newClientOrderId": cid})
            out.append(time.perf_counter() - start)
        return out

    def run(self, n: int) -> list[float]:
        result: list[float] = self._loop_thread.submit(self._orders(n)).result(120)
        return result


class RawCommit:
    """One single-row commit per order on the engine's kind of database, in the calling thread: SQLite WAL with
    synchronous=FULL (the engine's setting) in a file next to the engine's, or the engine's PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self._sqlite = url.startswith("sqlite")
        if self._sqlite:
            self._conn: Any = sqlite3.connect(url.removeprefix("sqlite:///") + ".floor", check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # the engine's money journal setting (db/_url.py)
            self._conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (cid TEXT PRIMARY KEY, body TEXT)")
            self._sql = "INSERT INTO bench_floor VALUES (?, ?)"
        else:
            import psycopg2

            self._conn = psycopg2.connect(url)
            with self._conn.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS bench_floor (cid TEXT PRIMARY KEY, body TEXT)")
            self._sql = "INSERT INTO bench_floor VALUES (%s, %s)"
        self._conn.commit()

    def run(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            row = (uuid.uuid4().hex, "x" * 200)
            start = time.perf_counter()
            if self._sqlite:
                self._conn.execute(self._sql, row)
            else:
                with self._conn.cursor() as cur:
                    cur.execute(self._sql, row)
            self._conn.commit()
            out.append(time.perf_counter() - start)
        return out

    def close(self) -> None:
        self._conn.close()


class RawSerial:
    """The floor as one program: per order, one raw single-row commit, then raw ccxt async `create_order`, one
    after the other on the loop thread and timed inside it (no hand-off, no logic).

    This is the least any program with the engine's guarantee (the intent durable before the order leaves)
    can do. It is slower than `RawCcxt` plus `RawCommit` measured apart: on this machine each part takes
    longer when the other runs between two of its calls (caches, the simulator's and the database's idle
    wake-ups), so the sum of the parts' percentiles is not a time any program reaches. `parts` keeps each
    part's own time so the report can show where the difference goes.
    """

    def __init__(self, loop_thread: Any, client: Any, symbol: str, args: OrderArgs, url: str) -> None:
        self._loop_thread, self._client, self._symbol, self._args = loop_thread, client, symbol, args
        self._commit = RawCommit(url + ".serial" if url.startswith("sqlite") else url)
        self._i = 0
        self.parts: list[tuple[float, float]] = []
        """(commit, create) seconds of each order, in order."""

    async def _orders(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            side, qty, price = self._args(self._i)
            self._i += 1
            cid = f"serial-{uuid.uuid4().hex[:20]}"
            start = time.perf_counter()
            self._commit.run(1)  # blocks the loop: a floor, not a design
            committed = time.perf_counter()
            await self._client.create_order(self._symbol, "limit", side, qty, price, {"newClientOrderId": cid})
            end = time.perf_counter()
            out.append(end - start)
            self.parts.append((committed - start, end - committed))
        return out

    def run(self, n: int) -> list[float]:
        result: list[float] = self._loop_thread.submit(self._orders(n)).result(120)
        return result

    def close(self) -> None:
        self._commit.close()


class EngineOrders:
    """`Engine.place_order(...).result()` one after the other; a refusal fails the benchmark."""

    def __init__(self, engine: Any, pair: str, args: OrderArgs) -> None:
        self._engine, self._pair, self._args = engine, pair, args
        self._i = 0

    def run(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            side, qty, price = self._args(self._i)
            self._i += 1
            start = time.perf_counter()
            outcome = self._engine.place_order(self._pair, side, qty, price).result(timeout=30)
            out.append(time.perf_counter() - start)
            if not outcome.accepted:
                raise RuntimeError(f"refused: {outcome}")
        return out


@dataclass
class Measured:
    """One contender's latencies (seconds) and the process CPU per order spent during its blocks."""

    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    @property
    def cpu_per_order_us(self) -> float:
        return self.cpu_s / max(1, len(self.latencies)) * 1e6


def interleaved(contenders: dict[str, Contender], n: int, block: int = 25, warmup: int = 20) -> dict[str, Measured]:
    """Warm each contender up, then run `n` orders of each in alternating blocks of `block`."""
    for contender in contenders.values():
        contender.run(warmup)
    out = {name: Measured() for name in contenders}
    done = 0
    while done < n:
        size = min(block, n - done)
        for name, contender in contenders.items():
            cpu = cpu_seconds()
            out[name].latencies += contender.run(size)
            out[name].cpu_s += cpu_seconds() - cpu
        done += size
    return out


def run_in_loop(loop_thread: Any, coro: Any, timeout_s: float = 60.0) -> Any:
    """Run `coro` on `loop_thread` and wait for its result."""
    return loop_thread.submit(coro).result(timeout_s)


async def ccxt_client(sim: Any) -> Any:
    """A raw ccxt client on the simulator, markets loaded (to be made on the loop that will use it)."""
    from engine.venue import make_client

    client = make_client("binance", api_key=sim.api_key, secret=sim.secret, rest_base=sim.rest)
    await client.load_markets()
    return client
