"""Long runs (`make chaos`): PostgreSQL stopped and restarted under a stream of writes; 1,000,000 fills."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import peewee
import pytest

from actors import Durability, Health, PersistenceSettings, start_persistence
from db import BatchWriter, FillRow, connect, count, fills_of, find_fills
from engine.domain import ClientOrderId, ExchangeOrderId, Fill, Pair, Side, Symbol, TradeId
from tests.db._records import T0

GET = 60
CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"]


def _cluster(action: str) -> None:
    subprocess.run([*CLUSTER, action], check=True, timeout=120, capture_output=True)


@pytest.mark.slow
@pytest.mark.postgres
def test_server_stop_and_restart_during_a_stream_of_writes(pg_url: str, tmp_path: Path) -> None:
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        pytest.skip("needs root and pg_ctlcluster to stop the local PostgreSQL 15 cluster")
    healths: list[Health] = []
    handle = start_persistence(
        pg_url,
        tmp_path / "spool.jsonl",
        listener=lambda report: healths.append(report.health),
        settings=PersistenceSettings(batch_size=100, max_retry_ticks=2),
    )
    assert handle.proxy.health().get(timeout=GET).health is Health.OK  # started and connected
    minimum = 5_000
    halfway = threading.Event()
    restarted = threading.Event()
    written: list[int] = []

    def stream() -> None:
        # Writes arrive before, during and after the outage: up to a cap while the server is away,
        # then a last burst once it is back.
        n = 0
        while n < 4 * minimum and not restarted.is_set():
            n += 1
            handle.save_fill(_fill(n))
            if n == minimum // 4:
                halfway.set()
        restarted.wait(timeout=GET)
        for _ in range(minimum // 5):
            n += 1
            handle.save_fill(_fill(n))
        written.append(n)

    writer = threading.Thread(target=stream, name="stream")
    writer.start()
    try:
        assert halfway.wait(timeout=GET)
        _cluster("stop")
        for _ in range(5):
            handle.proxy.tick().get(timeout=GET)  # retries fail while the server is down
    finally:
        _cluster("start")
        restarted.set()
    writer.join(timeout=GET)
    total = written[0]
    for _ in range(100):
        handle.proxy.tick().get(timeout=GET)
        if handle.proxy.health().get(timeout=GET).health is Health.OK:
            break
    assert handle.flush().get(timeout=GET) is Durability.DATABASE
    handle.stop()
    assert healths[:2] == [Health.OK, Health.DEGRADED]
    assert healths[-1] is Health.OK
    db = connect(pg_url)
    try:
        assert sorted(f.trade_id for f in find_fills(db)) == list(range(1, total + 1))
    finally:
        db.close()


def _fill(n: int, orders: int = 100_000) -> Fill:
    return Fill(
        symbol=Symbol("BTCUSDT"),
        pair=Pair("BTC/USDT"),
        trade_id=TradeId(n),
        client_order_id=ClientOrderId(f"c{n % orders}"),
        exchange_order_id=ExchangeOrderId(n % orders + 1),
        side=Side.BUY,
        price=Decimal("50000.01"),
        quantity=Decimal("0.001"),
        quote_quantity=Decimal("50.00001"),
        commission=Decimal("0.0000075"),
        commission_asset="BNB",
        is_maker=bool(n % 2),
        time=T0 + timedelta(milliseconds=n),
    )


def _plan(db: peewee.Database, sql: str) -> str:
    prefix = "EXPLAIN QUERY PLAN " if isinstance(db, peewee.SqliteDatabase) else "EXPLAIN "
    return " ".join(str(row) for row in db.execute_sql(prefix + sql).fetchall())


@pytest.mark.slow
def test_one_million_fills_exactly_once_with_indexed_queries(db_url: str) -> None:
    db = connect(db_url)
    try:
        writer = BatchWriter(db)
        total, chunk = 1_000_000, 5000
        for start in range(1, total + 1, chunk):
            batch = [_fill(n) for n in range(start, start + chunk)]
            writer.write(batch)
        writer.write([_fill(n) for n in range(1, 2 * chunk)])  # a replayed tail: no duplicates
        assert count(db, FillRow) == total
        assert [f.trade_id for f in fills_of(db, "c42")] == list(range(42, total + 1, 100_000))
        if isinstance(db, peewee.PostgresqlDatabase):
            db.execute_sql("ANALYZE fills")
        plan = _plan(db, "SELECT * FROM fills WHERE client_order_id = 'c42'")
        assert "fills_client_order_id" in plan, plan
        # The last 10 s of a 1000 s stream: selective, so an index must serve it.
        plan = _plan(db, "SELECT * FROM fills WHERE pair = 'BTC/USDT' AND time >= '2026-03-01 12:16:30'")
        assert "fills_pair_time" in plan or "fills_time" in plan, plan
        assert len(find_fills(db, pair="BTC/USDT", since=T0 + timedelta(seconds=990))) == 10_001
    finally:
        db.close()
