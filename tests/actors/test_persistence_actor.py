"""The persistence actor end to end on both backends, including real connection faults and a crash."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import peewee
import psycopg2
import pykka
import pytest

from actors import Durability, Health, HealthReport, PersistenceHandle, PersistenceSettings, start_persistence
from actors.persistence import PersistenceActor, WriteAheadRecord
from db import FillRow, OrderRow, connect, count, find_fills
from engine.domain import OrderStatus
from tests.actors._tcpproxy import TcpProxy
from tests.db import _records as rec

GET = 30  # seconds: generous upper bound for any future in these tests
REPO = Path(__file__).resolve().parents[2]


class Listener:
    """Collects health reports (called from the actor thread)."""

    def __init__(self) -> None:
        self.reports: list[HealthReport] = []
        self.changed = threading.Event()

    def __call__(self, report: HealthReport) -> None:
        self.reports.append(report)
        self.changed.set()

    @property
    def healths(self) -> list[Health]:
        return [r.health for r in self.reports]


def _start(url: str, tmp_path: Path, listener: Listener | None = None, batch: int = 50) -> PersistenceHandle:
    settings = PersistenceSettings(batch_size=batch, max_retry_ticks=1, connect_timeout_s=2)
    return start_persistence(url, tmp_path / "spool.jsonl", listener=listener, settings=settings)


def _until_ok(handle: PersistenceHandle, attempts: int = 50) -> None:
    for _ in range(attempts):
        handle.proxy.tick().get(timeout=GET)
        if handle.proxy.health().get(timeout=GET).health is Health.OK:
            return
    raise AssertionError("persistence did not recover")


@pytest.fixture
def reader(db_url: str) -> Iterator[peewee.Database]:
    db = connect(db_url)
    yield db
    db.close()


def test_tells_flush_and_queries(db_url: str, tmp_path: Path, reader: peewee.Database) -> None:
    listener = Listener()
    handle = _start(db_url, tmp_path, listener)
    o = rec.order()
    handle.save_order(o)
    for n in range(1, 121):
        handle.save_fill(rec.fill(n))
    handle.save_trade(rec.trade("r-c-1"))
    handle.save_error(rec.error(1))
    handle.save_snapshot(rec.snapshot("r-c-1"))
    assert handle.flush().get(timeout=GET) is Durability.DATABASE
    assert count(reader, FillRow) == 120  # durable and visible to another connection
    assert handle.proxy.open_orders().get(timeout=GET) == [o]
    assert len(handle.proxy.fills_of("c-1").get(timeout=GET)) == 120
    assert handle.proxy.find_trades(timeframe="5m").get(timeout=GET)[0].request_id == "r-c-1"
    assert len(handle.proxy.find_errors(operation="create_order").get(timeout=GET)) == 1
    assert handle.proxy.get_order("c-1").get(timeout=GET) == o
    assert handle.proxy.get_trade("nope").get(timeout=GET) is None
    assert handle.proxy.find_orders(status=OrderStatus.OPEN).get(timeout=GET) == [o]
    [gap] = handle.proxy.fill_gaps().get(timeout=GET)  # the synthetic order reports 0 filled
    assert gap.missing == -rec.Decimal("12")
    # Through the proxy too (the caller may ignore the future).
    handle.proxy.save_fill(rec.fill(500))
    handle.tick()
    assert handle.proxy.health().get(timeout=GET).health is Health.OK
    handle.stop()
    assert count(reader, FillRow) == 121
    assert listener.healths == [Health.OK]


def test_batches_and_write_ahead_in_one_message(db_url: str, tmp_path: Path, reader: peewee.Database) -> None:
    handle = _start(db_url, tmp_path)
    handle.save_many([rec.fill(n) for n in range(1, 4)])
    o = rec.order()
    # The write-ahead commits its own record, ahead of the batch told before it (the next tick's, or flush's).
    assert handle.write_ahead(o).get(timeout=GET) is Durability.DATABASE
    assert count(reader, OrderRow) == 1
    assert count(reader, FillRow) == 0
    assert handle.flush().get(timeout=GET) is Durability.DATABASE
    assert count(reader, FillRow) == 3
    assert handle.proxy.get_order("c-1").get(timeout=GET) == o
    handle.stop()


def test_a_write_ahead_commits_its_companions_with_it(tmp_path: Path) -> None:
    # On SQLite (the file is read directly): the companions (a pair message's records ahead of the intent, such
    # as its request) are durable when `on_durable` runs; an earlier message's records are not yet.
    path = tmp_path / "wa.sqlite3"
    handle = _start(f"sqlite:///{path}", tmp_path)
    durable = threading.Event()
    failures: list[BaseException] = []

    def stored(table: str, column: str) -> list[object]:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return sorted(row[0] for row in conn.execute(f"SELECT {column} FROM {table}"))

    try:
        handle.save_many([rec.fill(1)])
        handle.write_ahead_then(rec.order("c-9"), durable.set, failures.append, companions=[rec.fill(2)])
        assert durable.wait(GET) and not failures
        assert stored("fills", "trade_id") == [2]
        assert stored("orders", "client_order_id") == ["c-9"]
        assert handle.flush().get(timeout=GET) is Durability.DATABASE
        assert stored("fills", "trade_id") == [1, 2]
    finally:
        handle.stop()


def test_write_aheads_queued_together_share_one_commit(db_url: str, tmp_path: Path) -> None:
    # The actor as a plain object in this thread: the inbox state is set by hand, nothing races.
    actor = PersistenceActor(db_url, tmp_path / "spool.jsonl")
    actor.on_start()
    try:
        first: pykka.Future[Durability] = pykka.ThreadingFuture()
        second: pykka.Future[Durability] = pykka.ThreadingFuture()
        actor.actor_inbox.put("another pair's write-ahead")  # more is queued: the first waits
        actor.on_receive(WriteAheadRecord(rec.order("c-1"), first))
        with pytest.raises(pykka.Timeout):
            first.get(timeout=0)
        actor.actor_inbox.get_nowait()
        actor.on_receive(WriteAheadRecord(rec.order("c-2"), second))  # the inbox is empty: one commit answers both
        assert first.get(timeout=0) is Durability.DATABASE
        assert second.get(timeout=0) is Durability.DATABASE
        assert actor.get_order("c-1") is not None
    finally:
        actor.on_stop()


def test_a_newer_row_told_while_a_write_ahead_waits_for_its_group_is_kept(db_url: str, tmp_path: Path) -> None:
    # A fallback's write-ahead carries the primary's CANCELED row (filled 0.1); the primary's last fill
    # (filled 0.2) is told while that write-ahead waits for its group commit. The newer row must be stored.
    from decimal import Decimal

    actor = PersistenceActor(db_url, tmp_path / "spool.jsonl")
    actor.on_start()
    try:
        primary = rec.order("c-1")
        canceled = rec.progressed(primary, Decimal("0.1"), OrderStatus.CANCELED, seconds=5)
        later = rec.progressed(primary, Decimal("0.2"), OrderStatus.CANCELED, seconds=6)
        durable: pykka.Future[Durability] = pykka.ThreadingFuture()
        actor.actor_inbox.put("the fill's records")  # more is queued: the write-ahead waits
        actor.on_receive(WriteAheadRecord(rec.order("c-2"), durable, (canceled,)))
        actor.actor_inbox.get_nowait()
        actor.on_receive(later)  # the inbox is empty now: the group commits
        assert durable.get(timeout=0) is Durability.DATABASE
        actor.flush()
        stored = actor.get_order("c-1")
        assert stored is not None and stored.filled == Decimal("0.2")
    finally:
        actor.on_stop()


def _backend_pids(dsn: str, dbname: str) -> list[int]:
    conn = psycopg2.connect(dsn, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'bexec' "
                "AND pid <> pg_backend_pid()",
                (dbname,),
            )
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def _terminate(dsn: str, pids: list[int]) -> None:
    conn = psycopg2.connect(dsn, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for pid in pids:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        conn.close()


@pytest.mark.postgres
def test_pg_terminate_backend_during_writes(pg_url: str, pg_admin_dsn: str, tmp_path: Path) -> None:
    listener = Listener()
    handle = _start(pg_url, tmp_path, listener, batch=25)
    dbname = urlsplit(pg_url).path.lstrip("/")
    total = 0
    for round_ in range(3):
        for _ in range(100):
            total += 1
            handle.save_fill(rec.fill(total, f"c-{total % 5}"))
            handle.save_order(
                rec.progressed(rec.order(f"c-{total % 5}"), rec.Decimal(0), OrderStatus.OPEN, seconds=total)
            )
        handle.proxy.health().get(timeout=GET)  # barrier: the actor has taken everything so far
        pids = _backend_pids(pg_admin_dsn, dbname)
        assert pids, "the actor's connection should be visible"
        _terminate(pg_admin_dsn, pids)
        for _ in range(60):  # keep writing into the dead connection
            total += 1
            handle.save_fill(rec.fill(total, f"c-{total % 5}"))
        assert handle.flush().get(timeout=GET) in (Durability.SPOOL, Durability.DATABASE)
        _until_ok(handle)
        assert handle.flush().get(timeout=GET) is Durability.DATABASE, f"round {round_}"
    assert Health.DEGRADED in listener.healths
    db = connect(pg_url)
    try:
        ids = [f.trade_id for f in find_fills(db)]
        assert sorted(ids) == list(range(1, total + 1))  # every write exactly once
        assert count(db, OrderRow) == 5
    finally:
        db.close()
    handle.stop()


@pytest.mark.postgres
def test_socket_outage_during_writes(pg_url: str, tmp_path: Path) -> None:
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    user = parts.netloc.split("@")[0]
    proxied = urlunsplit((parts.scheme, f"{user}@127.0.0.1:{proxy.port}", parts.path, "", ""))
    listener = Listener()
    handle = _start(proxied, tmp_path, listener, batch=20)
    try:
        for n in range(1, 101):
            handle.save_fill(rec.fill(n))
        assert handle.flush().get(timeout=GET) is Durability.DATABASE
        proxy.cut()  # server gone: open connection reset, new connections refused
        for n in range(101, 301):
            handle.save_fill(rec.fill(n))
        assert handle.flush().get(timeout=GET) is Durability.SPOOL
        for _ in range(3):  # retries fail while the server is gone
            handle.proxy.tick().get(timeout=GET)
        assert handle.proxy.health().get(timeout=GET).health is Health.DEGRADED
        for n in range(301, 351):
            handle.save_fill(rec.fill(n))
        proxy.restore()
        _until_ok(handle)
        for n in range(351, 401):
            handle.save_fill(rec.fill(n))
        assert handle.flush().get(timeout=GET) is Durability.DATABASE
        assert listener.healths == [Health.OK, Health.DEGRADED, Health.OK]
        assert [f.trade_id for f in handle.proxy.fills_of("c-1").get(timeout=GET)] == list(range(1, 401))
    finally:
        handle.stop()
        proxy.close()


def _dead_url(real_url: str, tmp_path: Path) -> str:
    if real_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}"  # a directory: cannot be opened as a database
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    parts = urlsplit(real_url)
    user = parts.netloc.split("@")[0]
    return urlunsplit((parts.scheme, f"{user}@127.0.0.1:{port}", parts.path, "", ""))


def test_kill_9_during_outage_replays_on_next_start(db_url: str, tmp_path: Path, reader: peewee.Database) -> None:
    spool = tmp_path / "crash" / "spool.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.actors._spool_child", _dead_url(db_url, tmp_path), str(spool), "200"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"spooled\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=GET)
    assert child.returncode == -signal.SIGKILL
    assert spool.stat().st_size > 0
    assert count(reader, FillRow) == 0
    handle = start_persistence(db_url, spool)
    try:
        assert handle.proxy.health().get(timeout=GET).health is Health.OK
        assert sorted(f.trade_id for f in find_fills(reader)) == list(range(1, 201))
        assert count(reader, OrderRow) == 7
        assert spool.stat().st_size == 0
    finally:
        handle.stop()
