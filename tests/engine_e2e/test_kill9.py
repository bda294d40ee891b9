"""kill -9 at seeded random points, 20 times, then database = exchange ledger.

The simulator runs here; the engine runs in a child process (`_kill_child`) that trades continuously and is
killed with SIGKILL after a seeded number of requests (so at whatever instant its pipeline is in: intent
written, create in flight, fill being stored, fallback being placed …). Each restart runs crash recovery
before trading again. A last child settles everything and stops; then every engine order on the ledger
must be in the database with the same status and executed quantity, every trade of them stored exactly
once, and no client order id used twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from db import connect, find_orders, find_trades
from db._models import FillRow, RequestRow
from engine.domain import Order, OrderStatus, TradeStatus
from sim import AccountSpec, SimConfig, Simulator
from tests.service._proc import Lines

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
SEED = 20261125
_LEDGER_STATUS = {
    "NEW": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
    "REJECTED": OrderStatus.REJECTED,
}


def _child(mode: str, sim: Simulator, db_url: str, spool: Path, seed: int, log: Path) -> tuple[Any, Lines]:
    account = sim.accounts[0]
    args = [mode, sim.urls.rest, account.api_key, account.secret, db_url, str(spool), str(seed)]
    with log.open("a") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.engine_e2e._kill_child", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    return proc, Lines(proc.stdout)


@pytest.fixture
def sim() -> Any:
    account = AccountSpec(
        name="main", api_key="k" * 64, secret="S3cr3t" * 10 + "abcd",
        balances={"BTC": Decimal(10), "USDT": Decimal(1_000_000)},
    )  # fmt: skip
    config = SimConfig(seed=SEED, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, accounts=[account])
    with Simulator(config) as simulator:
        yield simulator


def test_kill_9_at_random_points_leaves_database_equal_to_the_ledger(sim: Simulator, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db_url = f"sqlite:///{tmp_path}/engine.sqlite3"
    spool = tmp_path / "spool.jsonl"
    log = tmp_path / "child.log"
    points: list[int] = []
    for kill in range(KILLS):
        after = rng.randint(1, 6)
        points.append(after)
        proc, lines = _child("trade", sim, db_url, spool, SEED + kill, log)
        try:
            expected = f"placed {after}"
            lines.wait_for(expected.__eq__, timeout=90)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, f"kill {kill} (seed {SEED}, points {points}): child exited early"
    proc, lines = _child("settle", sim, db_url, spool, SEED, log)
    try:
        lines.wait_for(lambda line: line == "settled", timeout=120)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0, f"settling failed (seed {SEED}, kill points {points}); see {log}"
    _assert_database_equals_ledger(sim, db_url, f"seed {SEED}, kill points {points}")


def _assert_database_equals_ledger(sim: Simulator, db_url: str, context: str) -> None:
    ledger = sim.control.ledger()
    engine_orders = [o for o in ledger["orders"] if str(o["clientOrderId"]).startswith("bx-")]
    cids = [str(o["clientOrderId"]) for o in engine_orders]
    assert len(cids) == len(set(cids)), f"{context}: a client order id was used twice on the exchange"
    assert len(engine_orders) >= KILLS, context
    handle = connect(db_url)
    try:
        stored: dict[str, Order] = {o.client_order_id: o for o in find_orders(handle)}
        for row in engine_orders:
            order = stored.get(str(row["clientOrderId"]))
            assert order is not None, f"{context}: {row['clientOrderId']} is on the exchange, not in the database"
            assert order.status is _LEDGER_STATUS[str(row["status"])], (context, row, order)
            assert order.filled == Decimal(str(row["executedQty"])), (context, row, order)
        by_id = {int(o["orderId"]) for o in engine_orders}
        ledger_trades = sorted(int(t["id"]) for t in ledger["trades"] if int(t["orderId"]) in by_id)
        stored_trades = sorted(row[0] for row in FillRow.select(FillRow.trade_id).tuples().execute(handle))
        assert stored_trades == ledger_trades, f"{context}: fills differ from the ledger's trades"
        never_sent = [o for o in stored.values() if o.status is OrderStatus.REJECTED and o.exchange_order_id is None]
        assert {o.client_order_id for o in stored.values()} - set(cids) == {o.client_order_id for o in never_sent}
        # Nothing lost either: every request made was executed in full (a market fallback follows each limit), and
        # summed up once. A restart that dropped a fallback (or a request) left a trade short, or none at all.
        trades = find_trades(handle)
        requests = RequestRow.select(RequestRow.request_id).tuples().execute(handle)
        assert sorted(t.request_id for t in trades) == sorted(row[0] for row in requests), context
        for trade in trades:
            assert trade.status is TradeStatus.FILLED and trade.filled == trade.requested, (context, trade)
    finally:
        handle.close()
