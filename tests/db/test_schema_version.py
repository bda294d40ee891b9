"""A database whose schema is newer than this engine knows is refused, and nothing is written to it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import peewee
import pytest

from db import (
    LATEST_VERSION,
    DatabaseSchemaError,
    StorageError,
    _migrations,
    connect,
    current_version,
    is_transient,
    migrate,
    parse_url,
)

_BOTH = pytest.mark.parametrize(
    "fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_fresh_url"))


@contextlib.contextmanager
def _opened(url: str, *, apply_migrations: bool) -> Iterator[peewee.Database]:
    db = connect(url, apply_migrations=apply_migrations)
    try:
        yield db
    finally:
        db.close()


def _schema_dump(db: peewee.Database) -> tuple[object, ...]:
    """Tables, their columns, indexes and row counts, and the recorded versions: what a migration would change."""
    tables = sorted(db.get_tables())
    columns = [(t, sorted(c.name for c in db.get_columns(t))) for t in tables]
    indexes = [(t, sorted(i.name for i in db.get_indexes(t))) for t in tables]
    rows = [(t, db.execute_sql(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables]
    versions = [tuple(row) for row in db.execute_sql("SELECT version, description FROM schema_version ORDER BY 1")]
    return (tables, columns, indexes, rows, versions)


def _stamp_newer(db: peewee.Database, version: int) -> None:
    """Record `version` as a newer engine's migration would."""
    db.execute_sql(
        "INSERT INTO schema_version (version, description, applied_at) "
        f"VALUES ({version}, 'from a newer engine', '2026-01-01 00:00:00.000000')"
    )


@_BOTH
def test_a_database_newer_than_this_engine_is_refused_and_left_untouched(fresh_url: str) -> None:
    newer = LATEST_VERSION + 1
    with _opened(fresh_url, apply_migrations=True) as db:
        _stamp_newer(db, newer)
        before = _schema_dump(db)
        with pytest.raises(DatabaseSchemaError) as info:
            migrate(db)
        assert current_version(db) == newer
        assert _schema_dump(db) == before
    message = str(info.value)
    assert message == (
        f"database schema version {newer} is newer than this engine knows ({LATEST_VERSION}): "
        "run a newer engine, or point it at another database"
    )
    assert isinstance(info.value, StorageError) and not is_transient(info.value)
    # connect() (what the daemon and the CLI call) refuses it the same way, naming the database (password masked).
    with pytest.raises(DatabaseSchemaError) as by_connect:
        connect(fresh_url)
    assert str(by_connect.value) == f"{parse_url(fresh_url).masked()}: {message}"
    with _opened(fresh_url, apply_migrations=False) as db:
        assert _schema_dump(db) == before


@_BOTH
def test_a_target_below_a_newer_schema_is_refused_too(fresh_url: str) -> None:
    with _opened(fresh_url, apply_migrations=True) as db:
        _stamp_newer(db, LATEST_VERSION + 3)
        with pytest.raises(DatabaseSchemaError, match="newer than this engine knows"):
            migrate(db, target=1)
        assert current_version(db) == LATEST_VERSION + 3


@_BOTH
def test_the_latest_version_itself_is_accepted(fresh_url: str) -> None:
    with _opened(fresh_url, apply_migrations=True) as db:
        assert current_version(db) == LATEST_VERSION
    with _opened(fresh_url, apply_migrations=True) as db:
        assert migrate(db) == LATEST_VERSION


@_BOTH
def test_a_newer_engine_migrating_meanwhile_is_still_refused(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first look (before the lock) still sees LATEST_VERSION; a newer engine has migrated by the time this
    # one holds the migration lock: the check under the lock refuses, and nothing is written.
    with _opened(fresh_url, apply_migrations=True) as db:
        _stamp_newer(db, LATEST_VERSION + 1)
        before = _schema_dump(db)
        looks = iter([LATEST_VERSION])
        monkeypatch.setattr(_migrations, "current_version", lambda d: next(looks, None) or current_version(d))
        with pytest.raises(DatabaseSchemaError, match="newer than this engine knows"):
            migrate(db)
        monkeypatch.undo()
        assert _schema_dump(db) == before
