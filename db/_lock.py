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

The PostgreSQL lock can be lost while its process lives (a server restart, a network drop): `InstanceLock.watch`
checks it every few seconds and takes it again (`db._lockwatch`). Where the lock cannot be taken at all because
the database is unreachable, ``required=True`` (the engine's) raises `LockUnavailableError`; otherwise a warning is
logged and an unheld lock returned.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
from loguru import logger

from db._errors import DatabaseUnavailableError
from db._lockwatch import (
    KEY_SQL,
    RETRY_S,
    DatabaseInUseError,
    LockLoss,
    PgLockSession,
    connect_for_lock,
    error_text,
)
from db._url import DatabaseUrl, parse_url

__all__ = [
    "APP_NAME_PREFIX",
    "RETAKE_WAIT_S",
    "WAIT_S",
    "WATCH_S",
    "DatabaseInUseError",
    "InstanceLock",
    "LockLoss",
    "LockUnavailableError",
    "acquire_instance_lock",
    "holder_text",
]

WAIT_S = 10
"""How long a PostgreSQL lock is waited for: the session of an engine killed a moment ago may still be ending."""
RETAKE_WAIT_S = 25
"""How long a lost PostgreSQL lock is waited for: past a network drop the server may keep the old session until
its keepalives end it (about 20 s); and how long it is tried for while the server cannot be reached."""
WATCH_S = 5.0
"""How often `InstanceLock.watch` checks a PostgreSQL lock by default."""


class LockUnavailableError(DatabaseUnavailableError, RuntimeError):
    """The instance lock could not be taken because the database cannot be reached: the engine does not start."""


class InstanceLock:
    """The held lock; `release` it when the engine has stopped (idempotent)."""

    def __init__(
        self, what: str, release: Callable[[], None] | None = None, session: PgLockSession | None = None
    ) -> None:
        self.what = what
        """What is locked (the lock file, or the masked URL and schema), for messages."""
        self._release = session.close if session is not None else release
        self._session = session

    @property
    def held(self) -> bool:
        """False when none was taken (in-memory SQLite, or the database was unreachable at start)."""
        return self._release is not None

    def watch(
        self,
        on_lost: Callable[[LockLoss], None],
        every_s: float = WATCH_S,
        *,
        on_unheld: Callable[[str], None] | None = None,
        on_retaken: Callable[[], None] | None = None,
        retry_s: float = RETRY_S,
    ) -> None:
        """Check the lock every `every_s` seconds until `release`, taking it again when its session was lost
        (`db._lockwatch`). From the watch's thread: `on_lost(loss)` once per loss when it is lost for good (another
        session holds it, or the server stayed unreachable for the retake wait); `on_unheld(reason)` once per loss
        when the server cannot be reached for now (tried again every `retry_s`); `on_retaken()` when it is held
        again after `on_unheld` and before `on_lost`. A SQLite lock is dropped only with its process: no watch."""
        if self._session is not None:
            self._session.watch(on_lost, every_s, on_unheld=on_unheld, on_retaken=on_retaken, retry_s=retry_s)

    def check(self) -> bool:
        """What the watch does each period, now: True while the lock is held."""
        return self._session.check() if self._session is not None else self.held

    def release(self) -> None:
        """Let the next engine start on this database."""
        release, self._release = self._release, None
        if release is not None:
            try:
                release()
            except Exception as exc:  # noqa: BLE001 - the process ending releases it anyway
                logger.warning("releasing the database lock {} failed: {}", self.what, exc)


def acquire_instance_lock(
    url: str,
    *,
    wait_s: float = WAIT_S,
    retake_wait_s: float = RETAKE_WAIT_S,
    required: bool = False,
    now: Callable[[], float] = time.monotonic,
) -> InstanceLock:
    """Take the instance lock of the database at `url` (see the module docstring); PostgreSQL waits up to
    `wait_s` for it, and up to `retake_wait_s` when `InstanceLock.watch` takes a lost one again: for another
    session to let go of it, and for an unreachable server to answer again (measured on `now`, seconds).

    Raises:
        DatabaseInUseError: another engine holds it (the message says which lock, and the holder's pid when known).
        LockUnavailableError: `required`, and the PostgreSQL server cannot be reached (password masked).
        DatabaseUrlError: `url` is malformed.
    """
    spec = parse_url(url)
    if spec.backend == "sqlite":
        return _sqlite_lock(spec)
    return _postgres_lock(spec, wait_s, retake_wait_s, required=required, now=now)


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


def _postgres_lock(
    spec: DatabaseUrl, wait_s: float, retake_wait_s: float, *, required: bool, now: Callable[[], float]
) -> InstanceLock:
    what = spec.masked()
    try:
        conn = connect_for_lock(spec, wait_s)
    except psycopg2.OperationalError as exc:
        message = error_text(exc, spec)
        if required:
            raise LockUnavailableError(
                f"cannot take the database lock: {what} unreachable ({message}); the engine does not start "
                "without it (another engine could be using the database)"
            ) from None
        logger.warning("database lock not taken, {} unreachable ({})", what, message)
        return InstanceLock(what)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_schema()")
            row = cur.fetchone()
        what = f"{what} schema {row[0] if row else '?'}"
        token = secrets.token_hex(4)
        _lock(conn, what, token)
    except BaseException:
        conn.close()
        raise
    logger.debug("database lock taken: {}", what)

    def retake() -> Any:
        new = connect_for_lock(spec, retake_wait_s)
        try:
            _lock(new, what, token, retaking=True)
        except BaseException:
            new.close()
            raise
        return new

    return InstanceLock(what, session=PgLockSession(conn, retake, what, outage_s=retake_wait_s, now=now))


APP_NAME_PREFIX = "bexec-engine pid "
"""The lock session's ``application_name`` is this, the engine's own pid and its lock's token: what a refused second
engine is told (the pid), and how a retake knows its own stale session (the token)."""


def _app_name(token: str) -> str:
    # pid and address told another engine behind the same NAT (pid 1 in its container) for this one, and this one's
    # own session from another address (a reconnect, IPv6 → IPv4) for another engine: a random token per lock tells
    # them (per lock, not per process: two engines of one process are two holders too).
    return f"{APP_NAME_PREFIX}{os.getpid()} id {token}"


def _lock(conn: Any, what: str, token: str, *, retaking: bool = False) -> None:
    with conn.cursor() as cur:
        # Named after this process, so a second engine's refusal can name the pid an operator would stop (the
        # server's backend pid is no process of the engine's host).
        cur.execute("SET application_name = %s", (_app_name(token),))
        if retaking:
            _held_by_another(cur, what, token)
        try:
            # Waits at most lock_timeout (the connection's) for a session that is ending to let go of it.
            cur.execute(f"SELECT pg_advisory_lock({KEY_SQL})")
        except psycopg2.errors.LockNotAvailable:
            cur.execute(_HOLDER_SQL)
            raise DatabaseInUseError(
                f"another engine is using the database {what} ({holder_text(cur.fetchone())}); "
                "stop it first, or give this one a database of its own"
            ) from None


_HOLDER_SQL = (
    "SELECT l.pid, a.application_name, host(a.client_addr) FROM pg_locks l "
    "LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    f"AND (l.classid::bigint << 32 | l.objid::bigint) = {KEY_SQL}"
)


def _held_by_another(cur: Any, what: str, token: str) -> None:
    # Taking a lost lock again: only this process's own stale session (one the server has not seen end yet) is worth
    # waiting for. Held by another engine, it is lost now: waiting out the retake's 25 s let this engine trade on
    # while the other one resumed the same requests (a 0.01 buy bought 0.02, both sending its fallback).
    cur.execute(f"SELECT pg_try_advisory_lock({KEY_SQL})")
    row = cur.fetchone()
    if row is not None and row[0]:
        cur.execute(f"SELECT pg_advisory_unlock({KEY_SQL})")  # taken below as usual (one hold, not two)
        return
    cur.execute(_HOLDER_SQL)
    holder = cur.fetchone()
    if holder is None or holder[1] == _app_name(token):
        return  # gone meanwhile, or our own stale session: wait for the server to end it
    raise DatabaseInUseError(
        f"another engine is using the database {what} ({holder_text(holder)}); stop it first, or give this one a "
        "database of its own"
    )


def holder_text(row: tuple[Any, ...] | None) -> str:
    """Who holds the PostgreSQL lock, from `pg_locks` joined with `pg_stat_activity`: (backend pid,
    application_name, client address). An engine's session names its pid (`APP_NAME_PREFIX`); the backend pid is
    the server's process, not the engine's, so it is given as such."""
    if row is None:
        return "advisory lock held by another session, which has just ended"
    backend, app, client = row
    where = f"client address {client}" if client else "a local socket"
    app = app or ""
    if app.startswith(APP_NAME_PREFIX):
        pid = app[len(APP_NAME_PREFIX) :].split(" ")[0]
        return f"advisory lock held by pid {pid} from {where}; server backend pid {backend}"
    shown = f"application_name {app!r}" if app else "no application_name visible to this user"
    return f"advisory lock held by another session: server backend pid {backend}, {where}, {shown}"
