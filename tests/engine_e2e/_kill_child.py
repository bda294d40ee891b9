"""The engine in a child process for the kill -9 test: trades until killed, or settles and stops.

    python -m tests.engine_e2e._kill_child trade|settle REST_URL API_KEY SECRET DB_URL SPOOL SEED

`trade` starts the engine (crash recovery runs first) and keeps placing requests, printing "placed N" after
each; the parent kills it with SIGKILL at a seeded point. `settle` starts it, waits until every resumed
request has finished, stops it gracefully keeping nothing open, and prints "settled".
"""

from __future__ import annotations

import random
import sys
import threading
from decimal import Decimal
from pathlib import Path

from engine.api import Engine, EngineEvent, EventKind
from engine.config import Config

PAIR = "BTC/USDT"


def _config(rest: str, key: str, secret: str) -> Config:
    return Config.model_validate(
        {
            "exchange": {"name": "binance", "rest_url": rest, "key": key, "secret": secret, "pair_whitelist": [PAIR]},
            "stream": {"user_data": False, "market_data": False, "reconcile_interval_s": "1"},
            "execution": {
                "dry_run": False, "limit_timeout_s": "0.3", "unknown_outcome_grace_s": "1",
                "conflict_policy": "queue", "on_shutdown": "cancel",
            },
            "logging": {"level": "WARNING"},
        }
    )  # fmt: skip


def main() -> None:
    mode, rest, key, secret, db_url, spool, seed = sys.argv[1:8]
    done = threading.Event()

    def on_event(event: EngineEvent) -> None:
        if event.kind is EventKind.DONE:
            done.set()

    engine = Engine.start(_config(rest, key, secret), database_url=db_url, spool_path=Path(spool), listeners=[on_event])
    print("started", flush=True)
    if mode == "settle":
        # Every resumed request finishes (limit timeouts, fallbacks, unknown outcomes resolved) before the stop.
        pair = engine._root.proxy().pair_refs().get(timeout=10)[PAIR]
        while engine.open_orders() or pair.active_requests().get(timeout=10):
            done.wait(0.2)
            done.clear()
        engine.stop(graceful=True)
        print("settled", flush=True)
        return
    rng = random.Random(int(seed))
    mid = Decimal(60000)
    n = 0
    while True:
        n += 1
        side = rng.choice(["buy", "sell"])
        # half cross the book (filled on arrival), half rest below/above it (timeout → market fallback)
        offset = Decimal(rng.choice([-200, -100, 100, 200]))
        price = mid + offset if side == "buy" else mid - offset
        future = engine.place_order(PAIR, side, "0.001", str(price), idempotency_key=f"k{seed}-{n}")
        future.result(timeout=30)
        print(f"placed {n}", flush=True)


if __name__ == "__main__":
    main()
