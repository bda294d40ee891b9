"""Persistence benchmark: the actor against the raw driver floor, on SQLite and PostgreSQL.

Run: `.venv/bin/python bench/persistence.py [--pg-dsn DSN] [--rows N] [--query-rows N]`.
Prints, per backend:
- sustained fills/s through the persistence actor (tell … flush) vs the raw driver's batched insert of the
  same rows (psycopg2 execute_values / sqlite3 executemany, same batch size, same pragmas), and the ratio;
- one-row-per-transaction throughput (actor with batch_size=1, and the raw driver) for reference;
- flush() latency p50/p99 (the cost of write-ahead of one order);
- the write-ahead batch as an order's create commits it (new RequestRecord + Order intent, plus the previous
  order's updated Order, its Trade and one Fill), p50/p99 µs through `BatchWriter.write` and through the actor's
  `write_ahead`, next to the raw driver's single-row INSERT + COMMIT floor measured in the same run;
- indexed query times on a table of --query-rows fills (and proportional orders/trades).
Creates and drops its own PostgreSQL database and a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from loguru import logger

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _persistence_floor import PAIRS, T0, make_fills, raw_insert, raw_rows
from _persistence_write_ahead import raw_single_commit, write_ahead_batches

from actors.persistence import PersistenceSettings, start_persistence
from db import (
    BatchWriter,
    Record,
    connect,
    fills_of,
    find_errors,
    find_orders,
    find_trades,
    open_orders,
)
from engine.domain import (
    ClientOrderId,
    ErrorRecord,
    ExchangeOrderId,
    Fill,
    Order,
    OrderStatus,
    Pair,
    RequestId,
    Side,
    Trade,
    TradeStatus,
)


def truncate(url: str) -> None:
    db = connect(url)
    for table in ("fills", "orders", "trades", "errors", "requests"):
        db.execute_sql(f"DELETE FROM {table}")
    db.close()


def actor_insert(url: str, fills: Sequence[Fill], batch: int, spool: Path) -> float:
    """Seconds from the first tell to the flush barrier resolving, through the persistence actor."""
    handle = start_persistence(url, spool, settings=PersistenceSettings(batch_size=batch))
    handle.proxy.health().get(timeout=60)  # started and connected
    started = time.perf_counter()
    for f in fills:
        handle.save_fill(f)
    handle.flush().get(timeout=600)
    elapsed = time.perf_counter() - started
    handle.stop()
    return elapsed


def flush_latency(url: str, samples: int, spool: Path) -> tuple[float, float]:
    """p50, p99 in ms of save_order + flush().get() (write-ahead of one order intent)."""
    handle = start_persistence(url, spool, settings=PersistenceSettings(batch_size=500))
    handle.proxy.health().get(timeout=60)
    times = []
    for i in range(samples):
        order = Order(
            client_order_id=ClientOrderId(f"wal{i}"),
            request_id=RequestId(f"wr{i}"),
            pair=Pair("BTC/USDT"),
            side=Side.BUY,
            order_type="limit",
            status=OrderStatus.PENDING_SUBMIT,
            price=Decimal("50000"),
            amount=Decimal("0.001"),
            created_at=T0,
            updated_at=T0,
        )
        started = time.perf_counter()
        handle.save_order(order)
        handle.flush().get(timeout=60)
        times.append((time.perf_counter() - started) * 1000)
    handle.stop()
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def query_times(url: str, rows: int) -> list[tuple[str, float, int]]:
    db = connect(url)
    writer = BatchWriter(db)
    n_orders = max(rows // 10, 10)
    chunk = 5000
    for start in range(0, rows, chunk):
        writer.write(make_fills(min(chunk, rows - start), start=start, orders=n_orders))
    orders: list[Record] = []
    trades: list[Record] = []
    errors: list[Record] = []
    for i in range(n_orders):
        pair = PAIRS[i % len(PAIRS)]
        status = OrderStatus.OPEN if i % 50 == 0 else OrderStatus.FILLED
        filled = Decimal(0) if status is OrderStatus.OPEN else Decimal("0.01")
        created = T0 + timedelta(seconds=i)
        orders.append(
            Order(
                client_order_id=ClientOrderId(f"c{i}"),
                exchange_order_id=ExchangeOrderId(i + 1),
                request_id=RequestId(f"r{i}"),
                pair=Pair(pair),
                side=Side.BUY,
                order_type="limit",
                status=status,
                price=Decimal("100.5"),
                amount=Decimal("0.01"),
                filled=filled,
                created_at=created,
                updated_at=created,
            )
        )
        trades.append(
            Trade(
                request_id=RequestId(f"r{i}"),
                pair=Pair(pair),
                side=Side.BUY,
                requested=Decimal("0.01"),
                filled=filled,
                status=TradeStatus.FILLED if filled else TradeStatus.OPEN,
                timeframe=["1m", "5m", "15m", "1h"][i % 4],
                strategy=["rsi_dip", "ewo_cross"][(i // 4) % 2],
                indicators={"rsi": Decimal(i % 10000) / Decimal(100), "ewo": Decimal(i % 7) - 3},
                created_at=created,
            )
        )
        if i % 20 == 0:
            errors.append(
                ErrorRecord(
                    operation=["create_order", "cancel_order"][i % 2], exchange_code=-2010, message="x", time=created
                )
            )
    for start in range(0, n_orders, chunk):
        writer.write(orders[start : start + chunk] + trades[start : start + chunk])
    writer.write(errors)
    probes: list[tuple[str, Callable[[], list[Any]]]] = [
        ("fills_of(one order)", lambda: fills_of(db, f"c{n_orders // 2}")),
        ("open_orders()", lambda: open_orders(db)),
        (
            "orders pair+status+since (limit 100)",
            lambda: find_orders(
                db, pair="ETH/USDT", status=OrderStatus.FILLED, since=T0 + timedelta(seconds=n_orders // 2), limit=100
            ),
        ),
        (
            "trades 5m rsi<30 (limit 100)",
            lambda: find_trades(db, timeframe="5m", indicators={"rsi": (None, Decimal(30))}, limit=100),
        ),
        (
            "trades 5m strategy since (limit 100)",
            lambda: find_trades(
                db, timeframe="5m", strategy="rsi_dip", since=T0 + timedelta(seconds=n_orders // 2), limit=100
            ),
        ),
        ("errors by kind+time", lambda: find_errors(db, operation="create_order", since=T0, limit=100)),
    ]
    results = []
    for name, probe in probes:
        timings = []
        found = 0
        for _ in range(5):
            started = time.perf_counter()
            found = len(probe())
            timings.append((time.perf_counter() - started) * 1000)
        results.append((name, statistics.median(timings), found))
    db.close()
    return results


def bench_backend(name: str, url: str, args: argparse.Namespace, work: Path) -> None:
    sqlite = name == "sqlite"
    connect(url).close()  # create the schema
    fills = make_fills(args.rows)
    rows = raw_rows(fills, sqlite)
    # Interleaved repeats, best of each: the machine is shared, so a single run measures the neighbours.
    raw_s = actor_s = float("inf")  # float-ok: seconds
    for _ in range(args.repeat):
        raw_s = min(raw_s, raw_insert(url, rows, args.batch))
        actor_s = min(actor_s, actor_insert(url, fills, args.batch, work / f"{name}-spool.jsonl"))
        truncate(url)
    small = fills[: args.single_rows]
    raw1_s = raw_insert(url, raw_rows(small, sqlite), 1)
    actor1_s = actor_insert(url, small, 1, work / f"{name}-spool1.jsonl")
    truncate(url)
    p50, p99 = flush_latency(url, args.flush_samples, work / f"{name}-spool2.jsonl")
    truncate(url)
    floor = raw_single_commit(url, args.wa_samples)
    wa_direct, wa_actor = write_ahead_batches(url, args.wa_samples, work / f"{name}-spool3.jsonl")
    truncate(url)
    raw_rate, actor_rate = len(rows) / raw_s, len(fills) / actor_s
    print(f"\n== {name} ({url if sqlite else mask(url)}) ==")
    print(f"batched ({args.batch}/txn), {args.rows} fills, best of {args.repeat}:")
    print(f"  raw driver        {raw_rate:10.0f} fills/s")
    print(f"  persistence actor {actor_rate:10.0f} fills/s   ratio {actor_rate / raw_rate:.2f}x (target >= 0.60x)")
    print(f"one row per transaction, {len(small)} fills:")
    print(f"  raw driver        {len(small) / raw1_s:10.0f} fills/s")
    print(f"  persistence actor {len(small) / actor1_s:10.0f} fills/s")
    print(f"flush() latency (save_order + flush), {args.flush_samples} samples: p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    print(f"write-ahead batch (request + order intent + previous order, trade, fill), {args.wa_samples} samples:")
    print(f"  raw single-row INSERT+COMMIT floor   p50 {floor[0]:7.0f} us  p99 {floor[1]:7.0f} us")
    print(f"  BatchWriter.write(batch)             p50 {wa_direct[0]:7.0f} us  p99 {wa_direct[1]:7.0f} us"
          f"   p50 ratio {wa_direct[0] / floor[0]:.2f}x floor")  # fmt: skip
    print(f"  actor write_ahead (after save_many)  p50 {wa_actor[0]:7.0f} us  p99 {wa_actor[1]:7.0f} us"
          f"   p50 ratio {wa_actor[0] / floor[0]:.2f}x floor")  # fmt: skip
    print(f"indexed queries on {args.query_rows} fills, {max(args.query_rows // 10, 10)} orders/trades (median of 5):")
    for label, ms, found in query_times(url, args.query_rows):
        print(f"  {label:40s} {ms:8.2f} ms  ({found} rows)")


def mask(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc and ":" in netloc.split("@")[0]:
        user = netloc.split("@")[0].split(":")[0]
        netloc = f"{user}:***@{netloc.split('@')[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pg-dsn", default=os.environ.get("BEXEC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--rows", type=int, default=100_000, help="fills for the throughput comparison")
    parser.add_argument("--batch", type=int, default=500, help="rows per transaction")
    parser.add_argument("--single-rows", type=int, default=2000, help="fills for one-row-per-transaction")
    parser.add_argument("--flush-samples", type=int, default=300)
    parser.add_argument("--wa-samples", type=int, default=500, help="write-ahead batches (and raw floor commits)")
    parser.add_argument("--query-rows", type=int, default=200_000, help="fills in the query table")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repeats of the throughput pair")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory(prefix="bexec-bench-") as tmp:
        work = Path(tmp)
        if "sqlite" in backends:
            bench_backend("sqlite", f"sqlite:///{work / 'bench.sqlite'}", args, work)
        if "postgresql" in backends:
            admin = psycopg2.connect(args.pg_dsn, connect_timeout=5)
            admin.autocommit = True
            name = f"bexec_bench_{os.getpid()}_{secrets.token_hex(3)}"
            with admin.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
            parts = urlsplit(args.pg_dsn)
            url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
            try:
                bench_backend("postgresql", url, args, work)
            finally:
                with admin.cursor() as cur:
                    cur.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        (name,),
                    )
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
