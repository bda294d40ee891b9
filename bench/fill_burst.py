"""Benchmark: a burst of execution reports across many pairs, all applied through the engine, none lost or twice.

Run: ``.venv/bin/python bench/fill_burst.py [--quick] [--fills N] [--pairs N] [--yield-every K]``.

The simulator (its own process, two accounts; see ``_fill_rig.py``) holds one resting order per pair for the
engine (placed through `Engine.place_order`) and one per pair for the floor account. It fills them round-robin
across the pairs as fast as its loop can (letting the socket writers run every ``--yield-every`` fills),
stamping each fill the moment its events are queued on the socket.

- floor: the same burst on the floor account's orders, received by a bare UBWA callback.
- engine: the burst on the engine's orders; the time stops when `Engine.subscribe`'s listener receives the
  FILL event (stream actor → pair actor → bus), matched to its send stamp by trade id.

Prints each side's lag (send → receiver) p50/p99/peak and the ratio of the peaks, then checks exactly-once:
one FILL event per trade, the per-order counts, the filled quantity the last event shows, and — after the
engine has stopped (final flush) — the fill rows and order rows in the engine's database.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fill_rig import (
    BareUbwa,
    SimProcess,
    ThreadProfiler,
    db_fill_counts,
    machine_load,
    pair_of,
    pct,
    place_resting,
    print_thread_cpu,
    start_engine,
    symbols_for,
    thread_cpu,
)

QTY = Decimal("0.01")


def _items(symbols: list[str], order_ids: dict[str, int], total: int) -> list[tuple[str, int, str]]:
    return [(symbols[i % len(symbols)], order_ids[symbols[i % len(symbols)]], str(QTY)) for i in range(total)]


def _line(label: str, lags_ms: list[float], span_ms: float, n: int) -> None:
    print(
        f"  {label:<36}p50 {pct(lags_ms, 0.5):7.1f}  p99 {pct(lags_ms, 0.99):7.1f}  peak {max(lags_ms):7.1f} ms"
        f"   last received {span_ms:6.0f} ms after the first send ({n / span_ms * 1000:,.0f}/s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (2,000 fills over 10 pairs)")
    parser.add_argument("--fills", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--yield-every", type=int, default=1, help="the simulator lets its writers run every K fills")
    parser.add_argument("--log-level", default="ERROR", help="the engine's log level (on stderr)")
    parser.add_argument("--profile", action="store_true", help="cProfile every thread (slow): where the CPU goes")
    parser.add_argument("--profile-dir", type=Path, help="with --profile: write each thread group's stats here")
    args = parser.parse_args()
    total, n_pairs = (2000, 10) if args.quick else (args.fills, args.pairs)
    per_order = -(-total // n_pairs)
    amount = str(QTY * per_order + 1)

    from engine.logs import setup_logging

    setup_logging(level=args.log_level)
    symbols = symbols_for(n_pairs)
    pairs = [pair_of(s) for s in symbols]
    print(machine_load())
    profiler = ThreadProfiler()
    if args.profile:
        profiler.install()
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp, SimProcess(symbols) as sim:
        workdir = Path(tmp)
        engine, recorder = start_engine(sim, workdir, pairs)
        bare = BareUbwa(sim)
        try:
            if not sim.wait_subscriptions(2):
                raise RuntimeError("the user data streams never subscribed")
            placed = place_resting(engine, pairs, amount)  # pair → (cid, order id)
            engine_oids = {s: placed[pair_of(s)][1] for s in symbols}
            cid_of_oid = {oid: cid for cid, oid in placed.values()}
            floor_oids = sim.external_orders("floor", symbols, amount)
            print(f"burst: {total:,} fills round-robin over {n_pairs} pairs ({per_order} per order)")

            # ---- floor
            bare.reset(total)
            floor_cpu = thread_cpu()
            sent = sim.fills(_items(symbols, floor_oids, total), yield_every=args.yield_every)
            if not bare.arrived.wait(300):
                raise RuntimeError(f"the floor received {len(bare.stamps)}/{total}")
            floor_cpu_after = thread_cpu()
            time.sleep(0.2)  # a duplicate would land here; the floor must see exactly `total`
            floor_lags = [(r - s) / 1e6 for r, (s, _) in zip(bare.stamps, sent, strict=True)]
            floor_span = (bare.stamps[-1] - sent[0][0]) / 1e6
            gen_floor = (sent[-1][0] - sent[0][0]) / 1e6

            # ---- engine
            labels = {bare.stream_id: "floor UBWA (idle here)"}
            recorder.reset(total)
            cpu_before = thread_cpu(labels)
            sent = sim.fills(_items(symbols, engine_oids, total), yield_every=args.yield_every)
            gen_engine = (sent[-1][0] - sent[0][0]) / 1e6
            delivered = recorder.arrived.wait(300)
            cpu_after = thread_cpu(labels)
            streams = engine.health().get("streams") or {}
            engine.stop(graceful=False)  # final flush: the database is complete from here on
            got = list(recorder.fills)
            sent_at = {tid: t for t, tid in sent}
            engine_lags = [(t - sent_at[tid]) / 1e6 for t, _cid, tid, _f in got if tid in sent_at]
            engine_span = (max(t for t, *_ in got) - sent[0][0]) / 1e6 if got else float("nan")

            print(f"  the simulator generated and sent it in {gen_floor:.0f} ms (floor), {gen_engine:.0f} ms (engine)")
            print("  lag, simulator send → receiver:")
            _line("floor: bare UBWA callback", floor_lags, floor_span, total)
            floor_cpu_s = sum(floor_cpu_after.values()) - sum(floor_cpu.values())
            if engine_lags:
                _line("engine: Engine.subscribe listener", engine_lags, engine_span, total)
                peak = max(engine_lags) / max(floor_lags)
                p50 = statistics.median(engine_lags) / statistics.median(floor_lags)
                print(f"  ratio engine / floor: peak lag {peak:.1f}   p50 lag {p50:.1f}")

            print(f"  CPU of this process while the floor took the burst: {floor_cpu_s / total * 1e6:.0f} µs per fill")
            print_thread_cpu(cpu_before, cpu_after, total, "the engine took the burst")
            reconnects = {name: h.get("reconnects") for name, h in streams.items()}
            print(f"  engine streams' reconnects during the run: {reconnects} (each one a gap repaired over REST)")

            # ---- exactly once
            by_trade = Counter(tid for _t, _c, tid, _f in got)
            twice = sum(1 for n in by_trade.values() if n > 1)
            lost = len(set(sent_at) - set(by_trade))
            foreign = len(set(by_trade) - set(sent_at))
            per_cid = Counter(cid for _t, cid, _tid, _f in got)
            last_filled: dict[str, Decimal] = {}
            for _t, cid, _tid, filled in got:
                last_filled[cid] = max(filled, last_filled.get(cid, Decimal(0)))
            want = QTY * per_order
            bad_counts = {cid: n for cid, n in per_cid.items() if n != per_order}
            bad_filled = {cid: f for cid, f in last_filled.items() if f != want}
            db_fills, db_orders = db_fill_counts(workdir)
            db_bad = {
                cid: (db_fills.get(cid, 0), db_orders.get(cid))
                for cid in cid_of_oid.values()
                if db_fills.get(cid, 0) != per_order or db_orders.get(cid, ("", Decimal(-1)))[1] != want
            }
            ledger = sim.call("ledger", "engine")
            ledger_trades = len(ledger["trades"])
            print(
                f"  engine: FILL events {len(got):,}/{total:,}  lost {lost}  twice {twice}  unknown {foreign}  "
                f"orders with a wrong event count {len(bad_counts)}  wrong filled {len(bad_filled)}"
            )
            print(
                f"  database: fill rows {sum(db_fills.values()):,}  orders whose fill rows or filled quantity differ "
                f"from the exchange {len(db_bad)}   (simulator ledger: {ledger_trades:,} trades)"
            )
            complete = (
                delivered
                and len(got) == total
                and lost == twice == foreign == 0
                and not bad_counts
                and not bad_filled
                and not db_bad
                and len(bare.stamps) == total
            )
            print(f"  exactly once through the engine and the database: {'PASS' if complete else 'FAIL'}")
            if db_bad:
                print(f"  e.g. {list(db_bad.items())[:3]}")
            ok = complete
        finally:
            bare.stop()
            engine.stop(graceful=False)
    if args.profile:
        profiler.report(total)
        if args.profile_dir:
            profiler.dump(args.profile_dir)
            print(f"  profiles written to {args.profile_dir} (python -m pstats <file>)")
    print(machine_load())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
