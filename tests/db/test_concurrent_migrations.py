"""Concurrent migrations of one fresh PostgreSQL database all succeed, and migrating never rebinds the model classes
(process-wide state that other threads, with their own databases, are using at the same time)."""

from __future__ import annotations

import sqlite3
import threading

import peewee
import pytest

from db import LATEST_VERSION, MODELS, current_version, make_database, migrate, open_connection, parse_url
from db._models import OrderRowV1, RequestRowV3, TradeRowV1

_ALL_MODELS = (*MODELS, OrderRowV1, TradeRowV1, RequestRowV3)
_MIGRATORS = 6


@pytest.mark.postgres
def test_concurrent_migrations_of_a_fresh_database_all_succeed(pg_fresh_url: str) -> None:
    # Several engines (or an engine and a tool) starting at once on a new database: each migrates it on its own
    # connection. CREATE TABLE IF NOT EXISTS schema_version used to run outside the advisory lock, and two
    # sessions creating the same table at once collide in PostgreSQL's catalog (IntegrityError on pg_type).
    spec = parse_url(pg_fresh_url)
    start = threading.Barrier(_MIGRATORS, timeout=30)
    versions: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        db = make_database(spec)
        try:
            open_connection(db, spec)
            start.wait()  # every session connected: the migrations start together
            versions.append(migrate(db))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=run) for _ in range(_MIGRATORS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not [t for t in threads if t.is_alive()]
    assert errors == []
    assert versions == [LATEST_VERSION] * _MIGRATORS

    db = make_database(spec)
    open_connection(db, spec)
    try:
        assert current_version(db) == LATEST_VERSION
        applied = [row[0] for row in db.execute_sql("SELECT version FROM schema_version ORDER BY version")]
        assert applied == list(range(1, LATEST_VERSION + 1))  # each migration applied once
    finally:
        db.close()


def test_migrating_never_binds_a_model_class(sqlite_url: str) -> None:
    # Model binding is class state shared by every thread: peewee's bind_ctx bound the models to this database for
    # the length of the CREATE TABLEs, and restored them afterwards in whatever order threads finished, so a
    # concurrent migration could create its tables through another thread's database or leave a model bound.
    spec = parse_url(sqlite_url)
    db = make_database(spec)
    open_connection(db, spec)
    before = {model: model._meta.database for model in _ALL_MODELS}
    seen: list[tuple[str, dict[type[peewee.Model], object]]] = []
    raw: sqlite3.Connection = db.connection()
    raw.set_trace_callback(lambda sql: seen.append((sql, {m: m._meta.database for m in _ALL_MODELS})))
    try:
        assert migrate(db) == LATEST_VERSION
    finally:
        raw.set_trace_callback(None)
        db.close()
    creates = [bound for sql, bound in seen if sql.lstrip().upper().startswith("CREATE TABLE")]
    assert len(creates) >= len(MODELS)  # every table was created while the callback watched
    assert all(bound == before for bound in creates)
    assert {model: model._meta.database for model in _ALL_MODELS} == before
