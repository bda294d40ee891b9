"""pytest plugin: isolated PostgreSQL and SQLite databases for storage tests.

Register with `pytest_plugins = ["tests.pg_fixtures"]`.

- `BEXEC_TEST_PG_DSN` set (e.g. postgresql://postgres@127.0.0.1:5432/postgres): that server is mandatory;
  if it does not answer, PostgreSQL tests ERROR (CI must not silently skip them).
- unset: try postgresql://postgres@127.0.0.1:5432/postgres with a 1 s timeout; if nothing answers, the
  PostgreSQL tests are skipped with a visible reason.

Each test session creates its own database `bexec_test_<pid>_<random>` and drops it at the end;
each test gets a fresh schema state via `pg_url` (tables truncated) or its own database via `pg_fresh_url`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from db import mask_url

ENV = "BEXEC_TEST_PG_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _with_db(dsn: str, dbname: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _admin(dsn: str) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(dsn, connect_timeout=1)
    conn.autocommit = True
    return conn


def create_database(admin_dsn: str, prefix: str = "bexec_test") -> str:
    """Create a uniquely named database on the server of `admin_dsn`; return its URL."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    conn = _admin(admin_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return _with_db(admin_dsn, name)


def drop_database(admin_dsn: str, url: str) -> None:
    """Terminate the sessions of the database at `url` and drop it."""
    name = urlsplit(url).path.lstrip("/")
    conn = _admin(admin_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        conn.close()


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    """DSN of a maintenance database on the test server (skip or error as described above)."""
    dsn = os.environ.get(ENV)
    try:
        _admin(dsn or DEFAULT_DSN).close()
    except psycopg2.OperationalError as exc:
        reason = " ".join(str(exc).split())
        if dsn:
            pytest.fail(f"{ENV}={mask_url(dsn)} is set but the server does not answer: {mask_url(reason)}")
        pytest.skip(f"PostgreSQL not available at {DEFAULT_DSN} and {ENV} unset: {reason}")
    return dsn or DEFAULT_DSN


@pytest.fixture(scope="session")
def pg_session_url(pg_admin_dsn: str) -> Iterator[str]:
    """URL of the session's own database, dropped at the end of the session."""
    url = create_database(pg_admin_dsn)
    try:
        yield url
    finally:
        drop_database(pg_admin_dsn, url)


@pytest.fixture
def pg_url(pg_session_url: str) -> str:
    """The session database with every table emptied (schema kept)."""
    conn = psycopg2.connect(pg_session_url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_version'")
            tables = [row[0] for row in cur.fetchall()]
            if tables:
                cur.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY")
    finally:
        conn.close()
    return pg_session_url


@pytest.fixture
def pg_admin(pg_url: str) -> Iterator[psycopg2.extensions.connection]:
    """An autocommit connection of the test's own to its database (to inspect or terminate other sessions)."""
    conn = psycopg2.connect(pg_url, connect_timeout=5)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def lock_holder(conn: psycopg2.extensions.connection) -> int | None:
    """The backend pid holding the engine's instance lock on `conn`'s database and schema, or None."""
    from db._lockwatch import KEY_SQL

    with conn.cursor() as cur:
        cur.execute(
            "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            f"AND (l.classid::bigint << 32 | l.objid::bigint) = {KEY_SQL}"
        )
        row = cur.fetchone()
    return int(row[0]) if row else None


@pytest.fixture
def pg_fresh_url(pg_admin_dsn: str) -> Iterator[str]:
    """A brand-new empty database for this test only (for migration tests)."""
    url = create_database(pg_admin_dsn, prefix="bexec_test_fresh")
    try:
        yield url
    finally:
        drop_database(pg_admin_dsn, url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'bexec.sqlite'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Parametrizes a test over both backends."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))
