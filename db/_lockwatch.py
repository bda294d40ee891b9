"""The PostgreSQL instance lock's session, and the watch that keeps the lock held while the engine runs.

An advisory lock lives as long as its session: a server restart, a network drop or an administrator's
``pg_terminate_backend`` ends the session and frees the lock without a word to the engine, which would go on
trading while a second engine starts on the same database. So the session is checked every few seconds
(`PgLockSession.watch`): a lost one is replaced and the lock taken again (WARNING); when that fails (another
session holds the lock, the server is down) the owner's `on_lost` is called (once per loss) and the lock is still
tried for at every check, so the process holds it again as soon as it can.

The session also asks the server for TCP keepalives: when the engine's host dies, the server drops the session,
and the lock with it, within about 20 s instead of the kernel's two hours.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg2
from loguru import logger

from db._url import DatabaseUrl, make_database

__all__ = ["KEY_SQL", "SERVER_KEEPALIVES", "PgLockSession", "connect_for_lock", "error_text"]

KEY_SQL = "hashtextextended('bexec-engine:' || current_schema(), 0)"
"""The lock's key: one per schema (advisory locks are per database already)."""
SERVER_KEEPALIVES = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=2"
"""The server probes an idle lock session after 10 s and drops it after two unanswered probes 5 s apart."""
_HELD_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() "
    f"AND (classid::bigint << 32 | objid::bigint) = {KEY_SQL})"
)
_JOIN_S = 15.0  # a check blocked on a dead connection ends within the connection's own time limits


def error_text(exc: BaseException, spec: DatabaseUrl) -> str:
    """`exc` on one line, the URL's password masked."""
    message = " ".join(str(exc).split())
    return message.replace(spec.password, "***") if spec.password else message


def connect_for_lock(spec: DatabaseUrl, wait_s: float) -> Any:
    """A new autocommit connection for the lock: it waits at most `wait_s` for it, and has server keepalives.

    Raises:
        psycopg2.Error: the server cannot be reached or refused the connection.
    """
    params = dict(make_database(spec, lock_timeout_ms=max(1, int(wait_s * 1000))).connect_params)
    # Before the URL's own options (in `params`), so an operator's `-c tcp_keepalives_idle=…` still wins.
    params["options"] = f"{SERVER_KEEPALIVES} {params.get('options', '')}".strip()
    # psycopg2 directly, not peewee: the connection is this lock's alone, used from the watch's thread and the
    # thread that releases it.
    conn = psycopg2.connect(database=spec.dbname, **params)
    conn.autocommit = True
    return conn


class PgLockSession:
    """The connection holding the advisory lock; `watch` keeps it held, `close` lets go of it (idempotent).

    Args:
        conn: the connection that holds the lock now.
        retake: opens a new connection holding the lock; raises `DatabaseInUseError` when another session holds
            it, `psycopg2.Error` when the server cannot be reached.
        what: the lock, for messages.
    """

    def __init__(self, conn: Any, retake: Callable[[], Any], what: str) -> None:
        self.what = what
        self._conn: Any = conn
        self._retake = retake
        self._mutex = threading.Lock()
        self._closed = threading.Event()
        self._lost = False
        self._on_lost: Callable[[str], None] = lambda _reason: None
        self._thread: threading.Thread | None = None

    def watch(self, on_lost: Callable[[str], None], every_s: float) -> None:
        """Check the lock every `every_s` seconds from a daemon thread until `close` (see the module docstring)."""
        self._on_lost = on_lost
        if self._thread is None and not self._closed.is_set():
            self._thread = threading.Thread(target=self._run, args=(every_s,), name="db-lock-watch", daemon=True)
            self._thread.start()

    def _run(self, every_s: float) -> None:
        # An Event wait, not a sleep: `close` ends it at once.
        while not self._closed.wait(every_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watch must outlive any one check
                logger.exception("database lock {}: the check failed", self.what)

    def check(self) -> bool:
        """Check the lock now, re-taking it if its session was lost; True while it is held."""
        with self._mutex:
            if self._closed.is_set():
                return False
            problem = self._problem()
            if problem is None:
                return True
            self._drop()
            try:
                self._conn = self._retake()
            except Exception as exc:  # noqa: BLE001 - DatabaseInUseError, psycopg2.Error: not held, reported below
                reason = f"{problem}; taking it again failed: {exc}"
                first, self._lost = not self._lost, True
            else:
                if self._closed.is_set():
                    # `close` gave up waiting for this check (a retake can take its connect and lock waits): the
                    # engine has stopped, so the lock it just got must not outlive it in this process.
                    self._drop()
                    return False
                if self._lost:
                    logger.warning("database lock {} re-taken after it was lost ({})", self.what, problem)
                else:
                    logger.warning(
                        "database lock {} lost ({}) and re-taken at once: engine goes on", self.what, problem
                    )
                self._lost = False
                return True
        logger.log("CRITICAL" if first else "DEBUG", "database lock {} lost: {}", self.what, reason)
        if first:
            self._on_lost(reason)  # outside the mutex: it may release the lock
        return False

    def _problem(self) -> str | None:
        if self._conn is None:
            return "its session was lost earlier"
        try:
            with self._conn.cursor() as cur:
                cur.execute(_HELD_SQL)
                row = cur.fetchone()
        except psycopg2.Error as exc:
            return f"its session ended ({' '.join(str(exc).split()) or type(exc).__name__})"
        return None if row and row[0] else "its session no longer holds it"

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error as exc:
                logger.debug("database lock {}: closing the old session: {}", self.what, exc)

    def close(self) -> None:
        """Stop the watch and end the session: the lock is free for the next engine."""
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_S)
            if thread.is_alive():
                logger.warning("database lock {}: its watch did not stop within {} s", self.what, _JOIN_S)
        if self._mutex.acquire(timeout=_JOIN_S):
            try:
                self._drop()
            finally:
                self._mutex.release()
        else:
            logger.warning("database lock {}: busy checking; that check ends its session when done", self.what)
