"""Benchmark: Engine.place_order → exchange ack, against the raw floor measured in the same run.

Floor (same guarantees, same simulator): raw ccxt async `create_order` plus, because the engine writes each
order's intent ahead, one raw single-row commit on the same database. Prints each part so the cost of
durability is visible, p50/p99, and the ratios (targets: p50 ≤ 1.15, p99 ≤ 1.3). Then throughput across 20
pairs at equal concurrency (target ≥ 0.8× raw ccxt async) and RSS growth over many orders (target ≤ 50 MB
after 100,000). Ends with an instrumented run printing where an order's time goes, hop by hop (`bench/_order_hops.py`).
Run: `python bench/order_latency.py [--orders N] [--memory-orders N] [--breakdown-orders N] [--pg-dsn DSN]`.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _order_hops import OrderHops, cpu_seconds  # noqa: E402 - bench/ is this script's directory

SYMBOLS = [
    f"{b}USDT"
    for b in (
        "BTC",
        "ETH",
        "BNB",
        "SOL",
        "XRP",
        "ADA",
        "DOGE",
        "TRX",
        "DOT",
        "LINK",
        "LTC",
        "BCH",
        "AVAX",
        "ATOM",
        "UNI",
        "XLM",
        "ETC",
        "FIL",
        "APT",
        "NEAR",
    )
]
PRICES = {
    s: Decimal(p)
    for s, p in zip(
        SYMBOLS,
        (
            "60000",
            "3000",
            "600",
            "150",
            "0.6",
            "0.45",
            "0.15",
            "0.12",
            "7",
            "15",
            "80",
            "400",
            "35",
            "9",
            "8",
            "0.11",
            "25",
            "5",
            "9",
            "5",
        ),
        strict=True,
    )
}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


def sim_config() -> Any:
    from sim import AccountSpec, SimConfig

    rich = {"USDT": Decimal(10**9)} | {s.removesuffix("USDT"): Decimal(10**7) for s in SYMBOLS}
    limits = {"request_weight_per_minute": 10**9, "orders_per_10s": 10**9, "orders_per_day": 10**12}
    account = AccountSpec(api_key="benchkey".ljust(64, "0"), secret="benchsecret".ljust(64, "0"), balances=rich)
    return SimConfig(seed=5, symbols=SYMBOLS, start_prices=PRICES, accounts=[account], rate_limits=limits)


class SimProcess:
    """The simulator in its own process (as Binance is), so it does not share the interpreter lock."""

    def __init__(self) -> None:
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + '/bench')\n"
            "from order_latency import sim_config\n"
            "from sim import Simulator\n"
            "from engine.logs import setup_logging\n"
            "setup_logging(level='ERROR')\n"
            "with Simulator(sim_config()) as sim:\n"
            "    print(sim.urls.rest, flush=True)\n"
            "    sys.stdin.read()\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(ROOT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.rest = self.proc.stdout.readline().strip()
        if not self.rest.startswith("http://"):
            raise RuntimeError("the simulator did not start")
        account = sim_config().accounts[0]
        self.api_key, self.secret = account.api_key, account.secret

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def order_args(symbol: str, i: int) -> tuple[str, str, str]:
    """A marketable limit that fills at once (alternating sides keeps balances steady), on the symbol's grid."""
    from sim import make_symbol_spec

    spec = make_symbol_spec(symbol, PRICES[symbol])
    price = PRICES[symbol]
    side = "buy" if i % 2 == 0 else "sell"
    limit = price * Decimal("1.01") if side == "buy" else price * Decimal("0.99")
    qty = max(spec.min_qty, (Decimal(20) / price).quantize(spec.step_size))
    return side, format(qty.normalize(), "f"), format(limit.quantize(spec.tick_size).normalize(), "f")


# ---- floor -----------------------------------------------------------------------------------------
CPU_PER_ORDER: dict[str, float] = {}
"""CPU of this process (all threads) per order after the warm-up, by run ("raw ccxt", "engine sqlite", …)."""


async def raw_ccxt_latencies(sim: Any, n: int) -> list[float]:
    from engine.venue import make_client

    client = make_client("binance", api_key=sim.api_key, secret=sim.secret, rest_base=sim.rest)
    await client.load_markets()
    out = []
    try:
        for i in range(n + 20):
            if i == 20:
                cpu = cpu_seconds()
            side, qty, price = order_args("BTCUSDT", i)
            start = time.perf_counter()
            await client.create_order(
                "BTC/USDT", "limit", side, qty, price, {"newClientOrderId": f"raw-{uuid.uuid4().hex[:20]}"}
            )
            if i >= 20:  # warm-up excluded
                out.append(time.perf_counter() - start)
        CPU_PER_ORDER["raw ccxt"] = (cpu_seconds() - cpu) / n
    finally:
        await client.close()
    return out


async def raw_ccxt_throughput(sim: Any, n: int, concurrency: int) -> float:
    from engine.venue import make_client

    client = make_client("binance", api_key=sim.api_key, secret=sim.secret, rest_base=sim.rest)
    await client.load_markets()
    counter = iter(range(n))

    async def worker(symbol: str) -> None:
        market = symbol.removesuffix("USDT") + "/USDT"
        for i in counter:
            side, qty, price = order_args(symbol, i)
            await client.create_order(
                market, "limit", side, qty, price, {"newClientOrderId": f"tp-{uuid.uuid4().hex[:20]}"}
            )

    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker(s) for s in SYMBOLS[:concurrency]))
    finally:
        await client.close()
    return n / (time.perf_counter() - start)


def raw_commit_latencies(url: str, n: int) -> list[float]:
    out = []
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///") + ".floor")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # the engine's money journal setting (db/_url.py)
        conn.execute("CREATE TABLE IF NOT EXISTS t (cid TEXT PRIMARY KEY, body TEXT)")
        for _ in range(n):
            start = time.perf_counter()
            conn.execute("INSERT INTO t VALUES (?, ?)", (uuid.uuid4().hex, "x" * 200))
            conn.commit()
            out.append(time.perf_counter() - start)
        conn.close()
    else:
        import psycopg2

        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS bench_floor (cid TEXT PRIMARY KEY, body TEXT)")
        conn.commit()
        for _ in range(n):
            start = time.perf_counter()
            with conn.cursor() as cur:
                cur.execute("INSERT INTO bench_floor VALUES (%s, %s)", (uuid.uuid4().hex, "x" * 200))
            conn.commit()
            out.append(time.perf_counter() - start)
        conn.close()
    return out


# ---- engine ----------------------------------------------------------------------------------------
def start_engine(sim: Any, url: str, spool: Path, pairs: list[str]) -> Any:
    from engine.api import Engine
    from engine.config import Config

    config = Config.model_validate(
        {
            "exchange": {
                "name": "binance",
                "rest_url": sim.rest,
                "key": sim.api_key,
                "secret": sim.secret,
                "pair_whitelist": pairs,
            },
            "execution": {"dry_run": False},
            "stream": {"user_data": False, "market_data": False},  # the REST path is what is measured
            "risk": {"max_order_notional": "1000000"},
            "logging": {"level": "WARNING"},
        }
    )
    return Engine.start(config, database_url=url, spool_path=spool)


def engine_latencies(engine: Any, n: int, label: str) -> list[float]:
    out = []
    for i in range(n + 20):
        if i == 20:
            cpu = cpu_seconds()
        side, qty, price = order_args("BTCUSDT", i)
        start = time.perf_counter()
        outcome = engine.place_order("BTC/USDT", side, qty, price).result(timeout=30)
        elapsed = time.perf_counter() - start
        if not outcome.accepted:
            raise RuntimeError(f"refused: {outcome}")
        if i >= 20:
            out.append(elapsed)
    CPU_PER_ORDER[f"engine {label}"] = (cpu_seconds() - cpu) / n
    return out


def engine_throughput(engine: Any, n: int, concurrency: int) -> tuple[float, int]:
    """Keep one request in flight per pair (the engine's per-pair conflict rule), `concurrency` pairs."""
    done = 0
    refused = 0
    counter = iter(range(n))
    start = time.perf_counter()

    def pump(symbol: str) -> None:
        nonlocal done, refused
        pair = symbol.removesuffix("USDT") + "/USDT"
        for i in counter:
            side, qty, price = order_args(symbol, i)
            outcome = engine.place_order(pair, side, qty, price).result(timeout=60)
            done += 1
            refused += 0 if outcome.accepted else 1

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(pump, SYMBOLS[:concurrency]))
    return done / (time.perf_counter() - start), refused


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(label: str, engine: list[float], ccxt: list[float], commit: list[float]) -> bool:
    p50_e, p99_e = statistics.median(engine), pct(engine, 0.99)
    p50_f = statistics.median(ccxt) + statistics.median(commit)
    p99_f = pct(ccxt, 0.99) + pct(commit, 0.99)
    print(f"\n[{label}] place_order → ack, {len(engine)} orders (µs)")
    for name, xs in (("raw ccxt async create_order", ccxt), ("raw single-row commit", commit)):
        print(f"  {name:<30}p50 {statistics.median(xs) * 1e6:8.0f}  p99 {pct(xs, 0.99) * 1e6:8.0f}")
    print(f"  floor (ccxt + commit)         p50 {p50_f * 1e6:8.0f}  p99 {p99_f * 1e6:8.0f}")
    print(f"  engine                        p50 {p50_e * 1e6:8.0f}  p99 {p99_e * 1e6:8.0f}")
    ok50, ok99 = p50_e / p50_f <= 1.15, p99_e / p99_f <= 1.3
    print(
        f"  ratio p50 {p50_e / p50_f:.2f} (target ≤ 1.15 {'PASS' if ok50 else 'FAIL'})"
        f"   p99 {p99_e / p99_f:.2f} (target ≤ 1.3 {'PASS' if ok99 else 'FAIL'})"
    )
    return ok50 and ok99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--throughput-orders", type=int, default=4000)
    parser.add_argument("--memory-orders", type=int, default=100_000)
    parser.add_argument("--breakdown-orders", type=int, default=300, help="instrumented run (0: none)")
    parser.add_argument(
        "--pg-dsn", default=os.environ.get("BEXEC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args()

    from engine.logs import setup_logging

    setup_logging(level="WARNING")
    ok = True
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    backends = [("sqlite", f"sqlite:///{tmp}/engine.sqlite3")]
    pg_db = _make_pg_database(args.pg_dsn)
    if pg_db is not None:
        backends.append(("postgresql", pg_db))
    else:
        print("PostgreSQL not reachable: its figures are skipped")
    try:
        sim = SimProcess()
        try:
            ccxt = asyncio.run(raw_ccxt_latencies(sim, args.orders))
            for label, url in backends:
                commit = raw_commit_latencies(url, args.orders)
                engine = start_engine(sim, url, tmp / f"{label}.spool", ["BTC/USDT"])
                try:
                    ok &= report(label, engine_latencies(engine, args.orders, label), ccxt, commit)
                    # One order at a time, every thread of the engine's work is on one interpreter lock: the
                    # latency follows the CPU it spends per order (the simulator runs in its own process).
                    ours, raw = CPU_PER_ORDER[f"engine {label}"] * 1e6, CPU_PER_ORDER["raw ccxt"] * 1e6
                    print(f"  CPU per order (this process, all threads): engine {ours:.0f} µs, raw ccxt {raw:.0f} µs")
                finally:
                    engine.stop(graceful=False)

            raw_tp = asyncio.run(raw_ccxt_throughput(sim, args.throughput_orders, 20))
            pairs = [s.removesuffix("USDT") + "/USDT" for s in SYMBOLS]
            engine = start_engine(sim, backends[0][1], tmp / "tp.spool", pairs)
            try:
                eng_tp, refused = engine_throughput(engine, args.throughput_orders, 20)
                print(
                    f"\n[throughput] 20 pairs, {args.throughput_orders} orders: raw ccxt async {raw_tp:.0f}/s, "
                    f"engine {eng_tp:.0f}/s, ratio {eng_tp / raw_tp:.2f} (target ≥ 0.8 "
                    f"{'PASS' if eng_tp / raw_tp >= 0.8 else 'FAIL'}), refused {refused}"
                )
                ok &= eng_tp / raw_tp >= 0.8 and refused == 0
                before = rss_mb()
                engine_throughput(engine, args.memory_orders, 20)
                growth = rss_mb() - before
                print(
                    f"[memory] RSS {before:.0f} MB → {before + growth:.0f} MB after {args.memory_orders} more orders: "
                    f"growth {growth:.1f} MB (target ≤ 50 {'PASS' if growth <= 50 else 'FAIL'})"
                )
                ok &= growth <= 50
            finally:
                engine.stop(graceful=False)  # flushes persistence: the database is complete after this
            lost, duplicated = _ledger_check(sim, [url for _, url in backends])
            print(
                f"[ledger] engine orders on the simulator missing from the database: {lost}; "
                f"client order ids used twice: {duplicated}"
            )
            ok &= lost == 0 and duplicated == 0
            if args.breakdown_orders:
                # Last: the wrappers stay installed for the rest of the process.
                hops = OrderHops()
                hops.install()
                engine = start_engine(sim, f"sqlite:///{tmp}/breakdown.sqlite3", tmp / "bd.spool", ["BTC/USDT"])
                try:
                    hops.run(engine, lambda i: order_args("BTCUSDT", i), args.breakdown_orders)
                finally:
                    engine.stop(graceful=False)
        finally:
            sim.close()
    finally:
        if pg_db is not None:
            _drop_pg_database(args.pg_dsn, pg_db)
    return 0 if ok else 1


def _ledger_check(sim: SimProcess, urls: list[str]) -> tuple[int, int]:
    """(engine orders the simulator holds that no database of the run has, client order ids seen twice)."""
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{sim.rest}/_sim/ledger", data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        ledger = json.loads(response.read())["result"]
    engine_ids = [o["clientOrderId"] for o in ledger["orders"] if str(o["clientOrderId"]).startswith("bx-")]
    stored: set[str] = set()
    for url in urls:
        if url.startswith("sqlite"):
            conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"))
            stored |= {row[0] for row in conn.execute("SELECT client_order_id FROM orders")}
        else:
            import psycopg2

            conn = psycopg2.connect(url)
            with conn.cursor() as cur:
                cur.execute("SELECT client_order_id FROM orders")
                stored |= {row[0] for row in cur.fetchall()}
        conn.close()
    return len(set(engine_ids) - stored), len(engine_ids) - len(set(engine_ids))


def _make_pg_database(dsn: str) -> str | None:
    import psycopg2

    try:
        conn = psycopg2.connect(dsn, connect_timeout=2)
    except psycopg2.OperationalError:  # no server: the PostgreSQL part is skipped with a message
        return None
    conn.autocommit = True
    name = f"bexec_bench_{os.getpid()}"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return dsn.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(dsn: str, url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
    conn.close()


if __name__ == "__main__":
    sys.exit(main())
