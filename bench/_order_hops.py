"""Where an order's time goes: stamps at each hop of `Engine.place_order` → ack, and CPU per order.

Used by `bench/order_latency.py` after its uninstrumented figures (the wrappers cost a few µs each, so the
breakdown is its own run). The engine's classes are wrapped in this process only; nothing in the engine
knows about it. One order is outstanding at a time, so "the last stamp of each hop" is that order's.

The hops, in the order they happen (µs from `place_order`):

- ``pair actor place``: the pair actor starts the request (the caller built and validated it first);
- ``write-ahead told``: the book decided the order; its intent goes to persistence, its create to the gateway;
- ``persistence receives``, ``commit start``/``commit end``: the intent's commit;
- ``gateway drains``: the loop thread took the create; ``create at gate``: ccxt prepared and signed it;
- ``gate opens``: the loop heard the commit is done, the bytes leave;
- ``response headers``: the exchange answered; ``reply to pair actor``: ccxt parsed the answer;
- ``pair actor on_result``: the pair actor starts on the answer; ``caller answered``: its future is set;
- ``caller wakes``: `place_order(...).result()` returns in the caller's thread.
"""

from __future__ import annotations

import resource
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from _fill_cpu import print_thread_cpu, thread_cpu

__all__ = ["OrderHops", "cpu_seconds"]

_HOPS = (
    "pair actor place",
    "write-ahead told",
    "persistence receives",
    "commit start",
    "gateway drains",
    "create at gate",
    "commit end",
    "gate opens",
    "response headers",
    "reply to pair actor",
    "pair actor on_result",
    "caller answered",
    "caller wakes",
)
_CPU = ("book.place", "book.on_result", "persistence commit_now")


def cpu_seconds() -> float:  # float-ok: seconds of CPU, for a printed figure
    """User + system CPU of this whole process (every thread) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


class OrderHops:
    """Stamps (perf_counter_ns) at each hop of one outstanding order, and thread-CPU of the pure parts."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.cpu: dict[str, list[float]] = {name: [] for name in _CPU}
        self._lock = threading.Lock()

    def install(self) -> None:
        """Wrap the engine's classes in this process (for the rest of the process's life)."""
        import actors.gateway._actor as gateway_actor
        import actors.gateway._core as gateway_core
        import actors.persistence._actor as persistence_actor
        import actors.persistence._core as persistence_core
        import engine.venue._gate as gate
        from actors.pair import PairActor
        from engine.pair import PairBook

        last, perf = self.last, time.perf_counter_ns

        def stamp(cls: Any, name: str, hop: str, when: Callable[[tuple[Any, ...]], bool] | None = None) -> None:
            inner = getattr(cls, name)

            def stamped(self: Any, *args: Any, **kwargs: Any) -> Any:
                if when is None or when(args):
                    last[hop] = perf()
                return inner(self, *args, **kwargs)

            setattr(cls, name, stamped)

        def timed(cls: Any, name: str, label: str, end_hop: str | None = None) -> None:
            inner, cpu = getattr(cls, name), self.cpu[label]

            def measured(self: Any, *args: Any, **kwargs: Any) -> Any:
                started = time.thread_time_ns()
                try:
                    return inner(self, *args, **kwargs)
                finally:
                    cpu.append((time.thread_time_ns() - started) / 1000)
                    if end_hop is not None:
                        last[end_hop] = perf()

            setattr(cls, name, measured)

        stamp(PairActor, "place", "pair actor place")
        stamp(PairActor, "_write_ahead", "write-ahead told")
        stamp(PairActor, "on_result", "pair actor on_result")
        stamp(gateway_actor.GatewayHandle, "_drain", "gateway drains")
        stamp(gateway_core.GatewayCore, "_on_response", "response headers")
        stamp(gateway_core.GatewayCore, "_reply", "reply to pair actor")
        stamp(persistence_actor.PersistenceActor, "on_receive", "persistence receives",
              lambda a: isinstance(a[0], persistence_actor.WriteAheadRecord))  # fmt: skip
        stamp(persistence_core.PersistenceCore, "commit_now", "commit start")
        timed(persistence_core.PersistenceCore, "commit_now", "persistence commit_now", "commit end")
        timed(PairBook, "place", "book.place")
        timed(PairBook, "on_result", "book.on_result")

        passed = gate.SendGate.passed

        async def gated(self: Any) -> None:
            last["create at gate"] = perf()
            await passed(self)
            last["gate opens"] = perf()

        gate.SendGate.passed = gated  # type: ignore[method-assign]

    def run(self, engine: Any, order_args: Callable[[int], tuple[str, str, str]], n: int, warmup: int = 20) -> None:
        """Place `n` orders one after the other (after `warmup`) and print the median time of each hop."""
        rows: list[dict[str, float]] = []
        for label in _CPU:
            self.cpu[label].clear()
        per_thread: dict[str, float] = {}
        for i in range(n + warmup):
            if i == warmup:
                per_thread = thread_cpu()
            side, qty, price = order_args(i)
            self.last.clear()
            start = time.perf_counter_ns()
            future = engine.place_order("BTC/USDT", side, qty, price)
            future.add_done_callback(lambda _f: self.last.__setitem__("caller answered", time.perf_counter_ns()))
            if not future.result(timeout=30).accepted:
                raise RuntimeError("an order of the breakdown run was refused")
            self.last["caller wakes"] = time.perf_counter_ns()
            if i >= warmup:
                rows.append({hop: (t - start) / 1000 for hop, t in self.last.items()})
        per_thread_after = thread_cpu()
        print(f"\n[breakdown] where an order's time goes (instrumented run, {n} orders, SQLite; p50 µs)")
        print(f"  {'hop':<28}{'since place_order':>18}{'since previous':>16}")
        previous = 0.0
        for hop in sorted(_HOPS, key=lambda h: statistics.median([r[h] for r in rows if h in r] or [0.0])):
            xs = [r[hop] for r in rows if hop in r]
            if not xs:
                continue
            at = statistics.median(xs)
            print(f"  {hop:<28}{at:>18.0f}{at - previous:>16.0f}")
            previous = at
        for label in _CPU:
            xs = self.cpu[label][warmup:]
            print(f"  thread CPU of {label:<26} p50 {statistics.median(xs):6.0f}  p99 {_pct(xs, 0.99):6.0f}")
        print_thread_cpu(per_thread, per_thread_after, n, f"the engine placed {n} orders", unit="order")
