"""The order benchmarks' rig: the simulator in its own process, its symbols and prices, the engine on it.

Used by `bench/order_latency.py` (kept apart so that script holds only its measurements); also the ledger
check (every engine order the simulator holds is in the database, no client order id twice) and a
throw-away PostgreSQL database.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

__all__ = [
    "PRICES",
    "SYMBOLS",
    "SimProcess",
    "drop_pg_database",
    "ledger_check",
    "make_pg_database",
    "order_args",
    "pct",
    "sim_config",
    "start_engine",
]

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
            "from _order_rig import sim_config\n"
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

    def cpu_s(self) -> float:  # float-ok: seconds of CPU, for a printed figure
        """User + system CPU the simulator's process has used so far (every thread; from /proc)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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


def ledger_check(sim: SimProcess, urls: list[str]) -> tuple[int, int]:
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


def make_pg_database(dsn: str) -> str | None:
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


def drop_pg_database(dsn: str, url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
    conn.close()
