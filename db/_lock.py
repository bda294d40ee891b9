"""One engine per database: an exclusive lock held for the engine's whole life.

Two engines on one database each take the other's unfinished requests for a crash's leftovers: they resume
them, close its live orders as vanished, and a second one that stops (say, because its control API port is
taken) cancels the first one's orders under ``on_shutdown = cancel``. So `Engine.start` takes this lock before
anything reads the database, and refuses to start while another engine holds it.

- SQLite: an ``flock`` on ``<database file>.lock`` (the holder's pid written in it for the message). The kernel
  drops it when the process dies, however it dies.
- PostgreSQL: a session advisory lock on a connection of its own, keyed to the current schema (advisory locks
  are per database already). The server drops it when that session ends, a killed process's included; a restart
  right after a kill waits up to `WAIT_S` for the old session to be gone.

Where the lock cannot be taken because the database is unreachable, the engine starts without it (it stores
through its spool meanwhile): this is logged as a warning, and nothing else changes.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import psycopg2
from loguru import logger

from db._errors import StorageError
from db._url import DatabaseUrl, make_database, parse_url

__all__ = ["WAIT_S", "DatabaseInUseError", "InstanceLock", "acquire_instance_lock"]

WAIT_S = 10
"""How long a PostgreSQL lock is waited for: the session of an engine killed a moment ago may still be ending."""
_KEY_SQL = "hashtextextended('bexec-engine:' || current_schema(), 0)"


class DatabaseInUseError(StorageError, RuntimeError):
    """Another engine holds the database's instance lock: this one must not start on it."""


class InstanceLock:
    """The held lock; `release` it when the engine has stopped (idempotent)."""

    def __init__(self, what: str, release: Any = None) -> None:
        self.what = what
        """What is locked (the lock file, or the masked URL and schema), for messages."""
        self._release = release

    @property
    def held(self) -> bool:
        """False when none was taken (in-memory SQLite, or the database was unreachable at start)."""
        return self._release is not None

    def release(self) -> None:
        """Let the next engine start on this database."""
        release, self._release = self._release, None
        if release is not None:
            try:
                release()
            except Exception as exc:  # noqa: BLE001 - the process ending releases it anyway
                logger.warning("releasing the database lock {} failed: {}", self.what, exc)


def acquire_instance_lock(url: str, *, wait_s: float = WAIT_S) -> InstanceLock:
    """Take the instance lock of the database at `url` (see the module docstring); PostgreSQL waits up to
    `wait_s` for it.

    Raises:
        DatabaseInUseError: another engine holds it (the message says which lock, and the holder's pid when known).
        DatabaseUrlError: `url` is malformed.
    """
    spec = parse_url(url)
    if spec.backend == "sqlite":
        return _sqlite_lock(spec)
    return _postgres_lock(spec, wait_s)


def _sqlite_lock(spec: DatabaseUrl) -> InstanceLock:
    if spec.path == ":memory:":
        return InstanceLock(":memory:")  # private to its connection: nobody can share it
    path = Path(f"{spec.path}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DatabaseInUseError(
            f"another engine is using the database {spec.path} (lock {path} held by pid {holder}); "
            "stop it first, or give this one a database of its own"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())

    def release() -> None:
        # Unlock before closing: the file stays (removing it would race a starting engine's open).
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    logger.debug("database lock taken: {}", path)
    return InstanceLock(str(path), release)


def _postgres_lock(spec: DatabaseUrl, wait_s: float) -> InstanceLock:
    db = make_database(spec, lock_timeout_ms=max(1, int(wait_s * 1000)))
    what = spec.masked()
    try:
        # psycopg2 directly, not peewee: the connection is this lock's alone, and `release` may run in any thread.
        conn = psycopg2.connect(database=spec.dbname, **db.connect_params)
    except psycopg2.OperationalError as exc:
        message = " ".join(str(exc).split())
        if spec.password:
            message = message.replace(spec.password, "***")
        logger.warning("database lock not taken, {} unreachable ({}): the engine starts without it", what, message)
        return InstanceLock(what)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT current_schema()")
            row = cur.fetchone()
            what = f"{what} schema {row[0] if row else '?'}"
            try:
                # Waits at most lock_timeout (`wait_s`) for a session that is ending to let go of it.
                cur.execute(f"SELECT pg_advisory_lock({_KEY_SQL})")
            except psycopg2.errors.LockNotAvailable:
                cur.execute(
                    "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
                    f"AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    f"AND (l.classid::bigint << 32 | l.objid::bigint) = {_KEY_SQL}"
                )
                holder = cur.fetchone()
                raise DatabaseInUseError(
                    f"another engine is using the database {what} (advisory lock held by server pid "
                    f"{holder[0] if holder else 'unknown'}); stop it first, or give this one a database of its own"
                ) from None
    except BaseException:
        conn.close()
        raise
    logger.debug("database lock taken: {}", what)
    return InstanceLock(what, conn.close)
