"""Shared rig of the user-data benchmarks (fill_latency, fill_burst, gap_recovery); not a benchmark itself.

- `SimProcess`: the simulator in its own process (as Binance is), so it does not share our interpreter lock.
  It has two accounts: ``engine`` (the engine's key) and ``floor`` (a bare UBWA client's key), so the floor and
  the engine receive the same kind of events from the same simulator in the same run without seeing each
  other's. Fills are made on the simulator's loop, which stamps ``perf_counter_ns`` the moment each event is
  queued on the socket (CLOCK_MONOTONIC: the same clock in both processes); the stamps come back over a pipe.
- `start_engine`: an `Engine` on the simulator with the user-data stream on, and a `FillRecorder` listener.
- `BareUbwa`: the floor: a plain UBWA manager whose callback only stamps the raw text.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ENGINE_KEY = "benchengine".ljust(64, "0")
ENGINE_SECRET = "benchenginesecret".ljust(64, "0")
FLOOR_KEY = "benchfloor".ljust(64, "0")
FLOOR_SECRET = "benchfloorsecret".ljust(64, "0")
PRICE = Decimal(10)


def symbols_for(n_pairs: int) -> list[str]:
    """``S00USDT`` … (the engine's whitelist); BTCUSDT is always listed too, to value the wallet in BTC."""
    return [f"S{i:02d}USDT" for i in range(n_pairs)]


def pair_of(symbol: str) -> str:
    return symbol.removesuffix("USDT") + "/USDT"


def pct(samples: Sequence[float], q: float) -> float:  # float-ok: microseconds / milliseconds
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


# ---- the simulator process -----------------------------------------------------------------------
def _sim_config(symbols: list[str]) -> Any:
    from sim import AccountSpec, SimConfig

    rich = {"USDT": Decimal(10**10), "BTC": Decimal(10**4)} | {s.removesuffix("USDT"): Decimal(10**8) for s in symbols}
    limits = {"request_weight_per_minute": 10**9, "orders_per_10s": 10**9, "orders_per_day": 10**12}
    accounts = [
        AccountSpec(name="engine", api_key=ENGINE_KEY, secret=ENGINE_SECRET, balances=rich),
        AccountSpec(name="floor", api_key=FLOOR_KEY, secret=FLOOR_SECRET, balances=rich),
    ]
    all_symbols = [*symbols, "BTCUSDT"]
    prices = dict.fromkeys(symbols, PRICE) | {"BTCUSDT": Decimal(60000)}
    return SimConfig(seed=6, symbols=all_symbols, start_prices=prices, accounts=accounts, rate_limits=limits)


def _serve(symbols: list[str]) -> None:
    """Child side: run the simulator and answer JSON-line commands on stdin until it closes."""
    from engine.logs import setup_logging
    from sim import Simulator

    setup_logging(level="ERROR")
    with Simulator(_sim_config(symbols)) as sim:
        loop = sim._loop  # the simulator has no public hook for running code on its loop
        assert loop is not None
        ops = sim.control.ops
        out = sys.stdout.buffer

        async def fills(items: list[list[Any]], spacing_us: int, yield_every: int) -> list[list[int]]:
            # Each fill queues its events on the socket synchronously; the stamp is taken right after, and the
            # writer task sends them at the next yield. `yield_every` lets the writers run during a burst.
            stamps = []
            perf = time.perf_counter_ns
            for i, (symbol, order_id, quantity) in enumerate(items, 1):
                trade = await ops.fill_order(symbol=symbol, order_id=order_id, quantity=quantity)
                stamps.append([perf(), int(str(trade["id"]))])
                if spacing_us:
                    await asyncio.sleep(spacing_us / 1e6)
                elif yield_every and i % yield_every == 0:
                    await asyncio.sleep(0)
            return stamps

        async def reconnect_stamp(kind: str, within_s: float) -> int:  # float-ok: seconds
            """Abort the user streams, wait for the new subscription, stamp the moment it is registered."""
            await ops.abort_ws(kind)
            if not await ops.wait_subscriptions(0, within_s):
                raise RuntimeError("the aborted subscription never went away")
            if not await ops.wait_subscriptions(1, within_s):
                raise RuntimeError("the stream never re-subscribed")
            return time.perf_counter_ns()

        out.write(orjson.dumps({"urls": [sim.urls.rest, sim.urls.ws_api, sim.urls.stream]}) + b"\n")
        out.flush()
        for line in sys.stdin.buffer:
            cmd = orjson.loads(line)
            try:
                if cmd["op"] == "fills":
                    coro = fills(cmd["items"], cmd.get("spacing_us", 0), cmd.get("yield_every", 1))
                    result: Any = asyncio.run_coroutine_threadsafe(coro, loop).result(600)
                elif cmd["op"] == "reconnect_stamp":
                    coro2 = reconnect_stamp(cmd.get("kind", "user"), cmd.get("within_s", 30.0))
                    result = asyncio.run_coroutine_threadsafe(coro2, loop).result(120)
                elif cmd["op"] == "wait_subscriptions":
                    result = sim.control.wait_subscriptions(cmd["n"], cmd.get("within_s", 20.0))
                else:
                    result = getattr(sim.control, cmd["op"])(*cmd.get("args", ()), **cmd.get("kwargs", {}))
                reply = {"ok": result}
            except Exception as exc:  # reported to the parent, which raises it
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(orjson.dumps(reply, default=str) + b"\n")
            out.flush()


class SimProcess:
    """The simulator in a child process, driven through a pipe (see module docstring)."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", orjson.dumps(symbols).decode()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first:
            raise RuntimeError("the simulator did not start")
        self.rest, self.ws_api, self.stream = orjson.loads(first)["urls"]
        self._lock = threading.Lock()

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """A `sim.Control` method by name (``place_external_order``, ``abort_ws``, ``ledger``, …)."""
        return self._send({"op": op, "args": list(args), "kwargs": kwargs})

    def fills(
        self, items: Sequence[tuple[str, int, str]], spacing_us: int = 0, yield_every: int = 1
    ) -> list[tuple[int, int]]:
        """Fill ``(symbol, order id, quantity)`` in order on the simulator loop; (send stamp, trade id) of each."""
        reply = self._send({"op": "fills", "items": items, "spacing_us": spacing_us, "yield_every": yield_every})
        return [(int(t), int(tid)) for t, tid in reply]

    def reconnect_stamp(self, kind: str = "user") -> int:
        """Abort ``kind`` connections; the simulator's stamp when the re-subscription is registered."""
        return int(self._send({"op": "reconnect_stamp", "kind": kind}))

    def wait_subscriptions(self, n: int, within_s: float = 20.0) -> bool:  # float-ok: seconds
        return bool(self._send({"op": "wait_subscriptions", "n": n, "within_s": within_s}))

    def _send(self, cmd: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(orjson.dumps(cmd) + b"\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process died")
        reply = orjson.loads(line)
        if "error" in reply:
            raise RuntimeError(f"simulator: {reply['error']}")
        return reply["ok"]

    def external_orders(self, account: str, symbols: Sequence[str], quantity: str) -> dict[str, int]:
        """One resting BUY per symbol on ``account`` (for the floor); symbol → order id."""
        out = {}
        for s in symbols:
            res = self.call(
                "place_external_order",
                account,
                symbol=s,
                side="BUY",
                type="LIMIT",
                timeInForce="GTC",
                quantity=quantity,
                price=str(PRICE - Decimal("0.1")),
            )
            out[s] = int(res["orderId"])
        return out

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- the engine ----------------------------------------------------------------------------------
@dataclass
class FillRecorder:
    """An `Engine.subscribe` listener: stamps every FILL event (and keeps what it says) as cheaply as possible."""

    fills: list[tuple[int, str, int, Decimal]] = field(default_factory=list)  # (ns, cid, trade id, order filled)
    others: list[Any] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    expect: int = 0
    unsubscribe: Any = None

    def __call__(self, event: Any) -> None:
        t = time.perf_counter_ns()
        if event.kind == "fill" and event.fill is not None:
            filled = event.order.filled if event.order is not None else Decimal(-1)
            self.fills.append((t, event.fill.client_order_id, event.fill.trade_id, filled))
            if len(self.fills) >= self.expect:
                self.arrived.set()
        else:
            self.others.append(event)

    def reset(self, expect: int) -> None:
        self.fills = []
        self.expect = expect
        self.arrived.clear()


def start_engine(sim: SimProcess, workdir: Path, pairs: list[str]) -> tuple[Any, FillRecorder]:
    """An engine trading `pairs` on the simulator, user data over the WS API, with a `FillRecorder`."""
    from engine.api import Engine
    from engine.clock import SystemClock
    from engine.config import Config

    config = Config.model_validate(
        {
            "exchange": {
                "name": "binance",
                "rest_url": sim.rest,
                "ws_api_url": sim.ws_api,
                "stream_url": sim.stream,
                "key": ENGINE_KEY,
                "secret": ENGINE_SECRET,
                "pair_whitelist": pairs,
            },
            "execution": {"dry_run": False, "limit_timeout_s": "3600"},
            "risk": {"max_order_notional": "100000000"},
            "logging": {"level": "WARNING"},
        }
    )
    engine = Engine.start(
        config,
        clock=SystemClock(),
        database_url=f"sqlite:///{workdir}/engine.sqlite3",
        spool_path=workdir / "spool.jsonl",
    )
    recorder = FillRecorder()
    recorder.unsubscribe = engine.subscribe(recorder)
    return engine, recorder


def place_resting(engine: Any, pairs: Sequence[str], amount: str) -> dict[str, tuple[str, int]]:
    """One resting limit BUY per pair through the engine; pair → (client order id, exchange order id)."""
    futures = {p: engine.place_order(p, "buy", amount, str(PRICE - Decimal("0.1"))) for p in pairs}
    out = {}
    for p, future in futures.items():
        outcome = future.result(timeout=60)
        if not outcome.accepted:
            raise RuntimeError(f"{p} refused: {outcome}")
        out[p] = (outcome.order.client_order_id, int(outcome.order.exchange_order_id))
    return out


def db_fill_counts(workdir: Path) -> tuple[dict[str, int], dict[str, tuple[str, Decimal]]]:
    """From the engine's database (after `stop`): fill rows per client order id, and each order's status/filled."""
    conn = sqlite3.connect(workdir / "engine.sqlite3")
    try:
        fills = dict(conn.execute("SELECT client_order_id, COUNT(*) FROM fills GROUP BY client_order_id").fetchall())
        orders = {
            cid: (status, Decimal(str(filled)))
            for cid, status, filled in conn.execute("SELECT client_order_id, status, filled FROM orders")
        }
    finally:
        conn.close()
    return fills, orders


# ---- the floor -----------------------------------------------------------------------------------
class BareUbwa:
    """A plain UBWA manager on the floor account whose callback only stamps fill reports (the floor)."""

    def __init__(self, sim: SimProcess, api_key: str = FLOOR_KEY, api_secret: str = FLOOR_SECRET) -> None:
        from unicorn_binance_websocket_api import BinanceWebSocketApiManager

        self.stamps: list[int] = []
        self.arrived = threading.Event()
        self.expect = 0
        stamps = self.stamps

        def hit(raw: str) -> None:
            if '"x":"TRADE"' in raw:  # an executionReport of a fill (orjson writes no spaces)
                stamps.append(time.perf_counter_ns())
                if len(stamps) >= self.expect:
                    self.arrived.set()

        self.manager = BinanceWebSocketApiManager(
            exchange="binance.com",
            websocket_api_base_uri=sim.ws_api,
            warn_on_update=False,
            output_default="raw_data",
            high_performance=True,  # as the engine's managers
            disable_colorama=True,
        )
        self.stream_id = str(
            self.manager.create_stream(
                ["arr"], ["!userData"], api_key=api_key, api_secret=api_secret, process_stream_data=hit
            )
        )

    def reset(self, expect: int) -> None:
        self.stamps.clear()
        self.expect = expect
        self.arrived.clear()

    def stop(self) -> None:
        self.manager.stop_manager()


def thread_group(name: str, labels: dict[str, str] | None = None) -> str:
    """A thread's name without its ids (``PairActor-3`` → ``PairActor-N``); UBWA stream threads by label."""
    import re

    for key, label in (labels or {}).items():
        if key in name:
            return label
    if "stream_id=" in name:
        return "UBWA stream " + name.split("stream_id=")[1][:8]
    return re.sub(r"urn:uuid:\S+|\d+", "N", name)


def thread_cpu(labels: dict[str, str] | None = None) -> dict[str, float]:
    """CPU seconds (user + system) of this process's live threads, by `thread_group` (from /proc; no overhead)."""
    ticks = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        key = thread_group(names.get(int(tid), "native"), labels)
        out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def print_thread_cpu(before: dict[str, float], after: dict[str, float], per: int, what: str) -> None:
    delta = sorted(((after[k] - before.get(k, 0.0), k) for k in after), reverse=True)
    total = sum(d for d, _ in delta)
    print(f"  CPU by thread while {what} ({total:.2f} s, {total / per * 1e6:.0f} µs per fill):")
    for d, k in delta:
        if d >= 0.02:
            print(f"    {d:6.2f} s  {d / per * 1e6:6.0f} µs/fill  {k}")


# ---- profiling ---------------------------------------------------------------------------------------
class ThreadProfiler:
    """cProfile with a per-thread CPU clock in every thread started after `install` (``Thread.run`` wrapped).

    The engine's work is spread over UBWA, pykka and loop threads; this says which thread spends the CPU, and
    in which functions. The overhead is large (every call reads the thread's CPU clock): use it for shares.
    """

    def __init__(self) -> None:
        self.profiles: list[tuple[str, Any]] = []

    def install(self) -> None:
        import cProfile

        original = threading.Thread.run
        profiles = self.profiles

        def run(thread: threading.Thread) -> None:
            prof = cProfile.Profile(time.thread_time_ns, 1e-9)
            profiles.append((thread.name, prof))
            prof.enable()
            try:
                original(thread)
            finally:
                prof.disable()

        threading.Thread.run = run  # type: ignore[method-assign,assignment]

    def dump(self, directory: Path) -> None:
        """Write each thread group's merged stats to ``<directory>/<group>.prof`` (read with `pstats`)."""
        import pstats
        import re

        directory.mkdir(parents=True, exist_ok=True)
        groups: dict[str, list[Any]] = {}
        for name, prof in self.profiles:
            groups.setdefault(thread_group(name), []).append(prof)
        for key, profs in groups.items():
            stats = pstats.Stats(profs[0])
            for prof in profs[1:]:
                stats.add(prof)
            stats.dump_stats(directory / (re.sub(r"\W+", "_", key).strip("_") + ".prof"))

    def report(self, per: int, top: int = 12) -> None:
        """Per thread group: CPU seconds (and µs per ``per`` items), then the top functions by own time."""
        import io
        import pstats
        import re

        groups: dict[str, list[Any]] = {}
        for name, prof in self.profiles:
            key = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27,}|urn:uuid:\S+|\d+", "N", name)
            groups.setdefault(key, []).append(prof)
        totals = []
        for key, profs in groups.items():
            stats = pstats.Stats(profs[0], stream=io.StringIO())
            for prof in profs[1:]:
                stats.add(prof)
            total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
            totals.append((total, key, len(profs), stats))
        totals.sort(key=lambda t: t[0], reverse=True)
        grand = sum(t[0] for t in totals)
        print(f"CPU by thread (cProfile, thread CPU clock; {grand:.2f} s in all, {grand / per * 1e6:.0f} µs per item)")
        for total, key, n, _stats in totals:
            if total > 0.01 * grand:
                print(f"  {total:7.2f} s  {total / per * 1e6:7.1f} µs/item  {n:3d} thread(s)  {key}")
        for total, key, _n, stats in totals[:4]:
            if total < 0.05 * grand:
                continue
            print(f"  -- {key}: top functions by own CPU (µs per item, own / cumulative)")
            rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
            for (file, line, func), (_cc, _nc, tt, ct, _callers) in rows:
                where = f"{Path(file).name}:{line}" if line else file
                print(f"     {tt / per * 1e6:7.1f} {ct / per * 1e6:8.1f}  {func}  ({where})")


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "serve":
    _serve(orjson.loads(sys.argv[2]))
