"""Benchmark: fills swallowed by a user-stream outage, all applied within 1 s of the reconnect.

Run: ``.venv/bin/python bench/gap_recovery.py [--quick] [--rounds N] [--pairs N] [--fills N] [--outage-s S]``.

The simulator (its own process; see ``_fill_rig.py``) holds one resting engine order per pair. Each round:

1. the engine's user-data connection goes silent (``stall_ws``: no frames, no pongs — events sent meanwhile
   are lost, as over a dead link);
2. over ``--outage-s`` seconds (2) the simulator fills the engine's orders ``--fills`` times (100), round-robin,
   and the floor account's orders the same way;
3. the connection is then cut (``abort_ws``, a TCP reset); UBWA reconnects and re-subscribes, and the
   simulator stamps the moment the new subscription is registered — the reconnect;
4. the engine notices the gap (its probe proves the new subscription live), queries each live order
   (FETCH_ORDER) and fetches the missing fills (myTrades): the time stops when `Engine.subscribe`'s listener
   has received the FILL event of every swallowed fill.

Target (issue 6): every fill applied within 1 s of the reconnect. The engine also reconciles every 5 s while a
stream is not connected; when that tick falls between the cut and the re-subscription, the fills arrive before
the reconnect and the round is left out of the figures (it says so). Floor, in the same run: raw ccxt async doing
the same repair for the floor account's orders (GET /api/v3/order then GET /api/v3/myTrades per order, all
orders concurrently), timed from its first request to its last answer.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fill_rig import (
    FLOOR_KEY,
    FLOOR_SECRET,
    SimProcess,
    machine_load,
    pair_of,
    place_resting,
    start_engine,
    symbols_for,
)

QTY = Decimal("0.01")


async def _floor_repair(sim: SimProcess, orders: dict[str, int], missing: set[tuple[str, int]]) -> tuple[float, int]:
    """Raw ccxt async: status then trades of every floor order, concurrently; (ms, swallowed trades found)."""
    from engine.venue import make_client

    client = make_client("binance", api_key=FLOOR_KEY, secret=FLOOR_SECRET, rest_base=sim.rest)
    try:
        await client.load_markets()

        async def repair(symbol: str, oid: int) -> list[tuple[str, int]]:
            status = await client.private_get_order({"symbol": symbol, "orderId": oid})
            if Decimal(str(status["executedQty"])) <= 0:
                return []
            trades = await client.private_get_mytrades({"symbol": symbol, "orderId": oid})
            return [(symbol, int(t["id"])) for t in trades]  # trade ids are per symbol

        start = time.perf_counter_ns()
        found = await asyncio.gather(*(repair(s, oid) for s, oid in orders.items()))
        elapsed = (time.perf_counter_ns() - start) / 1e6
    finally:
        await client.close()
    return elapsed, len(missing & {tid for ids in found for tid in ids})


def one_round(
    sim: SimProcess,
    recorder: Any,
    symbols: list[str],
    engine_oids: dict[str, int],
    floor_oids: dict[str, int],
    fills: int,
    outage_s: float,  # float-ok: seconds
) -> dict[str, Any]:
    recorder.reset(fills)
    items: list[tuple[str, int, str]] = []
    for i in range(fills):
        s = symbols[i % len(symbols)]
        items += [(s, engine_oids[s], str(QTY)), (s, floor_oids[s], str(QTY))]
    sim.call("stall_ws", "user")
    cut = time.perf_counter_ns()
    sent = sim.fills(items, spacing_us=int(outage_s * 1e6 / len(items)))
    remaining = outage_s - (time.perf_counter_ns() - cut) / 1e9
    if remaining > 0:
        time.sleep(remaining)  # the outage lasts its full length even if the fills were quicker
    reconnect = sim.reconnect_stamp("user")
    applied = recorder.arrived.wait(30)
    engine_tids = {tid for _t, tid in sent[0::2]}
    floor_tids = {tid for _t, tid in sent[1::2]}
    got = list(recorder.fills)
    seen = Counter(tid for _t, _c, tid, _f in got)
    early = sum(1 for t, *_ in got if t < reconnect)
    stamps = [t for t, _c, tid, _f in got if tid in engine_tids]
    return {
        "outage_ms": (reconnect - cut) / 1e6,
        "applied": applied and set(seen) == engine_tids,
        "events": len(got),
        "twice": sum(1 for n in seen.values() if n > 1),
        "early": early,
        "first_ms": (min(stamps) - reconnect) / 1e6 if stamps else float("nan"),
        "last_ms": (max(stamps) - reconnect) / 1e6 if stamps else float("nan"),
        "floor": asyncio.run(_floor_repair(sim, floor_oids, floor_tids)),
        "floor_fills": len(floor_tids),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (one round, 5 pairs)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--fills", type=int, default=100)
    parser.add_argument("--outage-s", type=float, default=2.0)  # float-ok: seconds
    parser.add_argument("--log-level", default="ERROR", help="the engine's log level (the gap logs warnings)")
    args = parser.parse_args()
    rounds, n_pairs = (1, 5) if args.quick else (args.rounds, args.pairs)

    from engine.logs import setup_logging

    setup_logging(level=args.log_level)
    symbols = symbols_for(n_pairs)
    pairs = [pair_of(s) for s in symbols]
    amount = str(QTY * (-(-args.fills // n_pairs)) * rounds + 1)
    print(machine_load())
    print(
        f"gap recovery: {args.fills} fills over {n_pairs} orders swallowed by a {args.outage_s:g} s outage "
        f"(stall, then TCP reset), {rounds} round(s)"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-gap-") as tmp, SimProcess(symbols) as sim:
        engine, recorder = start_engine(sim, Path(tmp), pairs)
        try:
            if not sim.wait_subscriptions(1):
                raise RuntimeError("the user data stream never subscribed")
            placed = place_resting(engine, pairs, amount)
            engine_oids = {s: placed[pair_of(s)][1] for s in symbols}
            floor_oids = sim.external_orders("floor", symbols, amount)
            for i in range(rounds):
                r = one_round(sim, recorder, symbols, engine_oids, floor_oids, args.fills, args.outage_s)
                results.append(r)
                floor_ms, floor_found = r["floor"]
                print(
                    f"  round {i + 1}: outage {r['outage_ms']:.0f} ms; reconnect → first fill applied "
                    f"{r['first_ms']:.0f} ms, → last ({r['events']}/{args.fills}) {r['last_ms']:.0f} ms; "
                    f"applied twice {r['twice']}; applied before the reconnect (a reconciliation on the engine's "
                    f"own cadence) {r['early']}; "
                    f"floor (raw ccxt repair) {floor_ms:.0f} ms ({floor_found}/{r['floor_fills']} found)"
                )
        finally:
            engine.stop(graceful=False)
    # A round whose fills the engine's own cadence already fetched (its 5 s reconciliation while the stream is
    # not connected can fall between the cut and the re-subscription) does not time the gap path: left out.
    clean = [r for r in results if r["early"] == 0] or results
    if len(clean) < len(results):
        print(f"  {len(results) - len(clean)} round(s) left out of the figures: fills applied before the reconnect")
    last = [r["last_ms"] for r in clean]
    floors = [r["floor"][0] for r in clean]
    ok = all(r["applied"] and r["twice"] == 0 for r in results) and max(last) <= 1000
    print(
        f"  reconnect → last fill applied: median {statistics.median(last):.0f} ms, max {max(last):.0f} ms "
        f"(target ≤ 1000)   floor median {statistics.median(floors):.0f} ms   "
        f"ratio {statistics.median(last) / statistics.median(floors):.1f}   {'PASS' if ok else 'FAIL'}"
    )
    print(machine_load())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
