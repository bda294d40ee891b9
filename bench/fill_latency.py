"""Benchmark: a fill's trip from the simulator to ``on_report`` through the stream actor, against bare UBWA.

Run: ``.venv/bin/python bench/fill_latency.py [--samples N] [--burst N] [--symbols N]``.

Latency: the simulator loop stamps ``perf_counter_ns`` right before it generates a fill (one at a time); the
time stops when the executionReport reaches (a) a bare UBWA ``process_stream_data`` callback that only looks
for ``"executionReport"`` in the raw text — the floor — and (b) ``on_report`` called by the stream actor
(parsed into a typed `ExecutionReport`). The two run in alternating blocks against the same simulator.
Targets (issue 6): p50 ratio ≤ 1.5, p99 ratio ≤ 2.

Burst: ``--burst`` fills spread over ``--symbols`` symbols, generated on the simulator loop without yielding;
every one must reach ``on_report`` exactly once, in the exchange's order. Prints the peak lag (generation →
``on_report``) and the delivery rate.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loguru import logger
from unicorn_binance_websocket_api import BinanceWebSocketApiManager

from actors._ticker import Ticker
from actors.stream import StreamActor, StreamSettings
from engine.clock import SystemClock
from engine.exchange import ExecutionReport, UserDataReport
from sim import AccountSpec, SimConfig, Simulator


class Probe:
    """One outstanding fill at a time: the sim stamps t0, the receiver stamps t1."""

    def __init__(self) -> None:
        self.t0 = 0
        self.t1 = 0
        self.done = threading.Event()

    def hit(self) -> None:
        if not self.done.is_set():
            self.t1 = time.perf_counter_ns()
            self.done.set()


def _loop(sim: Simulator) -> asyncio.AbstractEventLoop:
    loop = sim._loop  # the simulator has no public hook for running code on its loop
    assert loop is not None
    return loop


def _fill_once(sim: Simulator, symbol: str, order_id: int, probe: Probe) -> None:
    async def go() -> None:
        probe.t0 = time.perf_counter_ns()
        await sim.control.ops.fill_order(symbol=symbol, order_id=order_id, quantity="0.00001")

    asyncio.run_coroutine_threadsafe(go(), _loop(sim)).result(10)


def _measure(sim: Simulator, order_id: int, probe_box: list[Probe], n: int) -> list[float]:
    out = []
    for _ in range(n):
        probe = Probe()
        probe_box[0] = probe
        _fill_once(sim, "BTCUSDT", order_id, probe)
        if not probe.done.wait(10):
            raise RuntimeError("a fill never arrived")
        out.append((probe.t1 - probe.t0) / 1000)
    return out


def _bare_manager(
    sim: Simulator, probe_box: list[Probe], on_raw: Callable[[str], None] | None = None
) -> BinanceWebSocketApiManager:
    def hit(raw: str) -> None:
        if '"executionReport"' in raw:
            probe_box[0].hit()

    on_data = on_raw or hit

    mgr = BinanceWebSocketApiManager(
        exchange="binance.com",
        websocket_api_base_uri=sim.urls.ws_api,
        warn_on_update=False,
        output_default="raw_data",
        process_stream_data=on_data,
        disable_colorama=True,
    )
    acc = sim.accounts[0]
    mgr.create_stream(["arr"], ["!userData"], api_key=acc.api_key, api_secret=acc.secret)
    return mgr


def _actor(
    sim: Simulator, on_report: Callable[[UserDataReport], None], on_gap: Callable[[str], None] | None = None
) -> Any:
    acc = sim.accounts[0]
    clock = SystemClock()
    ticker = Ticker(clock)
    ticker.start()
    settings = StreamSettings(
        ws_api_url=sim.urls.ws_api, stream_url=sim.urls.stream, api_key=acc.api_key, api_secret=acc.secret
    )
    ref = StreamActor.start(
        settings,
        clock=clock,
        ticker=ticker,
        on_report=on_report,
        on_gap=on_gap or (lambda _r: None),
        rng=random.Random(1),
    )
    return ref, ticker


def _pct(samples: list[float], q: float) -> float:  # float-ok: microseconds
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def latency(samples: int, blocks: int = 8) -> bool:
    with Simulator(SimConfig(seed=1)) as sim:
        res = sim.control.place_external_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="1", price="60000"
        )
        order_id = int(str(res["orderId"]))
        bare: list[float] = []
        ours: list[float] = []
        per_block = max(1, samples // blocks)
        for _ in range(blocks):
            box = [Probe()]
            mgr = _bare_manager(sim, box)
            sim.control.wait_subscriptions(1)
            _measure(sim, order_id, box, 50)  # warm-up
            bare += _measure(sim, order_id, box, per_block)
            mgr.stop_manager()
            sim.control.wait_subscriptions(0)

            def on_report(report: UserDataReport, box: list[Probe] = box) -> None:
                if isinstance(report, ExecutionReport):
                    box[0].hit()

            ref, ticker = _actor(sim, on_report)
            sim.control.wait_subscriptions(1)
            _measure(sim, order_id, box, 50)
            ours += _measure(sim, order_id, box, per_block)
            ref.stop(timeout=10)
            ticker.stop()
            sim.control.wait_subscriptions(0)
    b50, b99, o50, o99 = _pct(bare, 0.5), _pct(bare, 0.99), _pct(ours, 0.5), _pct(ours, 0.99)
    r50, r99 = o50 / b50, o99 / b99
    print(f"fill latency, sim → callback, {len(ours)} fills each (µs)")
    print(f"  {'':<22}{'p50':>9}{'p99':>9}{'mean':>9}")
    print(f"  {'bare UBWA callback':<22}{b50:>9.0f}{b99:>9.0f}{statistics.fmean(bare):>9.0f}")
    print(f"  {'stream actor on_report':<22}{o50:>9.0f}{o99:>9.0f}{statistics.fmean(ours):>9.0f}")
    ok = r50 <= 1.5 and r99 <= 2.0
    print(f"  ratio p50 {r50:.2f} (target ≤ 1.5)  p99 {r99:.2f} (target ≤ 2.0)  {'PASS' if ok else 'FAIL'}")
    return ok


def burst(total: int, n_symbols: int, bare: bool = False) -> bool:
    symbols = [f"S{i:02d}USDT" for i in range(n_symbols)]
    config = SimConfig(
        seed=2,
        symbols=symbols,
        start_prices={s: Decimal(10) for s in symbols},
        accounts=[AccountSpec(balances={"USDT": Decimal(100_000_000)})],
    )
    received: list[tuple[int, int]] = []  # (perf_counter_ns, trade id)
    all_in = threading.Event()
    per_symbol = -(-total // n_symbols)

    def on_report(report: UserDataReport) -> None:
        if isinstance(report, ExecutionReport) and report.is_trade:
            received.append((time.perf_counter_ns(), int(report.trade_id or 0)))
            if len(received) >= total:
                all_in.set()

    def on_raw(raw: str) -> None:
        if '"x":"TRADE"' in raw:
            received.append((time.perf_counter_ns(), 0))
            if len(received) >= total:
                all_in.set()

    with Simulator(config) as sim:
        if bare:
            box = [Probe()]
            mgr = _bare_manager(sim, box, on_raw)
        else:
            ref, ticker = _actor(sim, on_report)
        sim.control.wait_subscriptions(1)
        orders = {}
        for s in symbols:
            res = sim.control.place_external_order(
                symbol=s, side="BUY", type="LIMIT", timeInForce="GTC", quantity=str(per_symbol + 1), price="9.9"
            )
            orders[s] = int(str(res["orderId"]))
        sent: list[int] = []

        async def go() -> None:
            ops = sim.control.ops
            n = 0
            while n < total:
                for s in symbols:
                    if n == total:
                        break
                    sent.append(time.perf_counter_ns())
                    await ops.fill_order(symbol=s, order_id=orders[s], quantity="1")
                    n += 1

        start = time.perf_counter_ns()
        asyncio.run_coroutine_threadsafe(go(), _loop(sim)).result(120)
        generated = time.perf_counter_ns()
        delivered = all_in.wait(120)
        end = time.perf_counter_ns()
        ledger = [int(str(t["id"])) for t in sim.control.ledger()["trades"]]
        if bare:
            mgr.stop_manager()
        else:
            ref.stop(timeout=10)
            ticker.stop()
    ids = ledger if bare else [tid for _, tid in received]
    complete = delivered and ids == ledger and len(received) == total
    lags = [(r - s) / 1e6 for (r, _), s in zip(received, sent, strict=False)]  # float-ok: milliseconds
    who = "a bare UBWA callback (floor)" if bare else "the stream actor"
    print(f"burst through {who}: {total} fills over {n_symbols} symbols")
    print(f"  generated in {(generated - start) / 1e6:.0f} ms, all delivered after {(end - start) / 1e6:.0f} ms")
    print(f"  delivered {len(received)}/{total}, in exchange order and none twice: {ids == ledger}")
    print(f"  lag p50 {statistics.median(lags):.0f} ms, peak {max(lags):.0f} ms")
    print(f"  {'PASS' if complete else 'FAIL'}")
    return complete


def gap_notice(rounds: int) -> None:
    """Time from a dropped connection (TCP abort) to ``on_gap``: UBWA's reconnect, re-subscribe, our probe."""
    gap = threading.Event()
    samples: list[float] = []
    with Simulator(SimConfig(seed=3)) as sim:
        ref, ticker = _actor(sim, lambda _r: None, lambda _reason: gap.set())
        sim.control.wait_subscriptions(1)
        for _ in range(rounds):
            gap.clear()
            start = time.perf_counter_ns()
            sim.control.abort_ws("user")
            if not gap.wait(10):
                raise RuntimeError("no gap after a disconnect")
            samples.append((time.perf_counter_ns() - start) / 1e6)
        ref.stop(timeout=10)
        ticker.stop()
    print(
        f"gap notice (TCP abort → on_gap), {rounds} rounds: p50 {statistics.median(samples):.0f} ms, "
        f"max {max(samples):.0f} ms (UBWA waits 100 ms before reconnecting)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    ok = True if args.skip_latency else latency(args.samples)
    gap_notice(20)
    burst(args.burst, args.symbols, bare=True)
    ok = burst(args.burst, args.symbols) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
