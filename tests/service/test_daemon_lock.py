"""A daemon started on a database another engine is using stops with exit 1 before it reads or writes it."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest

from db import acquire_instance_lock
from engine.service._daemon import EXIT_START_FAILED
from tests.service._proc import cli

pytestmark = pytest.mark.timeout(120)


def test_a_daemon_on_a_sqlite_database_in_use_stops_without_creating_or_migrating_it(tmp_path: Path) -> None:
    # Before: the daemon's report of an earlier run's open orders opened and migrated the database first, under
    # the running engine, and only the engine's start then found the lock taken.
    held = acquire_instance_lock(f"sqlite:///{tmp_path}/engine.sqlite3")
    try:
        result = cli(tmp_path, "daemon")
    finally:
        held.release()
    assert result.returncode == EXIT_START_FAILED, result.stderr[-2000:]
    assert "daemon not started: engine: another engine is using the database" in result.stderr
    assert not (tmp_path / "engine.sqlite3").exists()  # neither created nor migrated
    assert "left open by an earlier run" not in result.stdout  # the other engine's live orders are not leftovers


@pytest.mark.postgres
def test_a_daemon_on_a_postgresql_database_in_use_stops_without_migrating_it(tmp_path: Path, pg_fresh_url: str) -> None:
    held = acquire_instance_lock(pg_fresh_url)
    try:
        result = cli(tmp_path, "daemon", FREQTRADE__DATABASE__URL=pg_fresh_url)
    finally:
        held.release()
    assert result.returncode == EXIT_START_FAILED, result.stderr[-2000:]
    assert "daemon not started: engine: another engine is using the database" in result.stderr
    conn = psycopg2.connect(pg_fresh_url, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert cur.fetchone() == (0,)  # no schema_version, no table: nothing was migrated
    finally:
        conn.close()
