"""Where the engine's CPU goes per order: every thread under cProfile (thread CPU clock), one order at a time.

Run: `python bench/order_profile.py [--orders N] [--out DIR]`. Prints CPU per order by thread group and each
group's top functions; writes ``<DIR>/<group>.prof`` for `pstats`. Start-up is included (keep --orders large); times
inflate under the profiler: read the shares, not the figures (`order_latency.py` has the real ones).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fill_cpu import ThreadProfiler
from _order_rig import SimProcess, order_args, start_engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "order_profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    from engine.logs import setup_logging

    setup_logging(level="WARNING")
    sim = SimProcess()
    profiler = ThreadProfiler()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            profiler.install()
            engine = start_engine(sim, f"sqlite:///{tmp}/p.sqlite3", Path(tmp) / "p.spool", ["BTC/USDT"])
            try:

                def place(i: int) -> None:
                    side, qty, price = order_args("BTCUSDT", i)
                    outcome = engine.place_order("BTC/USDT", side, qty, price).result(timeout=30)
                    if not outcome.accepted:
                        raise RuntimeError(f"refused: {outcome}")

                def caller() -> None:
                    for i in range(args.orders):
                        place(i)

                # In a thread started after `install`, so the caller's own CPU is profiled too.
                thread = threading.Thread(target=caller, name="caller")
                thread.start()
                thread.join()
            finally:
                engine.stop(graceful=False)
    finally:
        sim.close()
    profiler.report(args.orders, top=args.top)
    profiler.dump(args.out)
    print(f"profiles in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
