"""PostgreSQL sessions carry a lock and a statement time limit: a lock held by another session fails the engine's
write as a transient error (spooled, health degraded) within the limit, instead of blocking the persistence
thread, and every write-ahead behind it, for as long as the other session pleases."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import peewee
import psycopg2
import pytest
from playhouse.migrate import SchemaMigrator

from actors.persistence import Durability, Health, HealthReport, PersistenceCore, PersistenceSettings, Spool
from db import (
    MIGRATIONS,
    BatchWriter,
    _migrations,
    connect,
    get_order,
    is_bad_record,
    is_transient,
    make_database,
    open_connection,
    parse_url,
)
from tests.db import _records as rec

pytestmark = pytest.mark.postgres

# No test below waits this long unless the limit under test is missing: then the watchdog cancels the blocked
# statement, so the test fails on its elapsed time instead of hanging the suite.
_WATCHDOG_S = 20.0  # float-ok: seconds
_BOUND_S = 10.0  # float-ok: seconds; generous for a 200 ms limit on a loaded machine


@pytest.fixture
def locked_orders(pg_url: str) -> Iterator[Callable[[], None]]:
    """Another session holds ACCESS EXCLUSIVE on `orders` (an open transaction, as a stuck tool or a long DDL)
    until the test calls the function this yields (or ends)."""
    db = connect(pg_url)  # the schema exists before the other session locks a table of it
    db.close()
    locker = psycopg2.connect(pg_url)
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        yield locker.rollback
    finally:
        locker.rollback()
        locker.close()


class _Watchdog:
    """Cancels the engine's statements on `url`'s database after `_WATCHDOG_S`: a safety net, not synchronisation
    (without the limit under test the write would block until the lock is released, i.e. forever)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._timer = threading.Timer(_WATCHDOG_S, self._cancel)

    def _cancel(self) -> None:
        with psycopg2.connect(self._url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'bexec'"
            )

    def __enter__(self) -> _Watchdog:
        self.started = time.monotonic()
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()
        self.elapsed = time.monotonic() - self.started


def test_engine_sessions_have_lock_and_statement_limits(pg_url: str) -> None:
    db = connect(pg_url)
    try:
        assert db.execute_sql("SHOW lock_timeout").fetchone()[0] == "5s"
        assert db.execute_sql("SHOW statement_timeout").fetchone()[0] == "30s"
        assert db.connection().get_dsn_parameters()["tcp_user_timeout"] == "20000"
    finally:
        db.close()


def test_a_held_table_lock_fails_the_write_as_transient_in_bounded_time(
    pg_url: str, locked_orders: Callable[[], None]
) -> None:
    spec = parse_url(pg_url)
    db = make_database(spec, lock_timeout_ms=200)
    open_connection(db, spec)
    try:
        writer = BatchWriter(db)
        with _Watchdog(pg_url) as watch, pytest.raises(psycopg2.Error) as raised:
            writer.write([rec.order("locked")])
        assert watch.elapsed < _BOUND_S
        assert is_transient(raised.value), repr(raised.value)
        assert not is_bad_record(raised.value)
        assert isinstance(raised.value, psycopg2.errors.LockNotAvailable)
        locked_orders()
        writer.write([rec.order("after")])  # the same session writes once the lock is gone
        assert get_order(db, "after") is not None
    finally:
        db.close()


def test_a_statement_limit_cuts_a_long_statement_as_transient(pg_url: str) -> None:
    spec = parse_url(pg_url)
    db = make_database(spec, statement_timeout_ms=200)
    open_connection(db, spec)
    try:
        with _Watchdog(pg_url) as watch, pytest.raises(peewee.OperationalError) as raised:
            db.execute_sql("SELECT pg_sleep(30)")
        assert watch.elapsed < _BOUND_S
        assert is_transient(raised.value)
    finally:
        db.close()


def test_persistence_spools_the_write_ahead_and_degrades(
    pg_url: str, locked_orders: Callable[[], None], tmp_path: Path
) -> None:
    # The URL's own `options` come after the engine's, so an operator's (here a test's) limit wins.
    url = f"{pg_url}?options={quote('-c lock_timeout=200')}"
    reports: list[HealthReport] = []
    core = PersistenceCore(url, tmp_path / "spool.jsonl", listener=reports.append, settings=PersistenceSettings())
    core.start()
    try:
        assert not core.degraded
        with _Watchdog(pg_url) as watch:
            durability = core.commit_now([rec.order("wa-1")])
        assert watch.elapsed < _BOUND_S
        assert durability is Durability.SPOOL
        assert core.degraded
        assert [r.health for r in reports] == [Health.OK, Health.DEGRADED]
        assert list(Spool(tmp_path / "spool.jsonl").read()) == [rec.order("wa-1")]
    finally:
        core.stop()


def test_migrations_run_without_the_statement_limit(pg_fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A migration may rewrite a big table: its statements must not be cut at 30 s (the start-up would fail, again
    # and again). Its lock waits stay bounded: a DDL queued behind a lock holds up every reader behind it.
    seen: list[tuple[str, str]] = []
    last = MIGRATIONS[-1]

    def watched(db: peewee.Database, migrator: SchemaMigrator) -> None:
        show = [db.execute_sql(f"SHOW {name}").fetchone()[0] for name in ("statement_timeout", "lock_timeout")]
        seen.append((show[0], show[1]))
        last.apply(db, migrator)

    monkeypatch.setattr(_migrations, "MIGRATIONS", (*MIGRATIONS[:-1], dataclasses.replace(last, apply=watched)))
    db = connect(pg_fresh_url)
    try:
        assert seen == [("0", "5s")]
        assert db.execute_sql("SHOW statement_timeout").fetchone()[0] == "30s"  # the session's limit is back
        assert db.execute_sql("SHOW lock_timeout").fetchone()[0] == "5s"
    finally:
        db.close()
