"""The PostgreSQL instance lock's session, and the watch that keeps the lock held while the engine runs.

An advisory lock lives as long as its session: a server restart, a network drop or an administrator's
``pg_terminate_backend`` ends the session and frees the lock without a word to the engine, which would go on
trading while a second engine starts on the same database. So the session is checked every few seconds
(`PgLockSession.watch`): new orders pause at once (`on_unheld`), and a lost one is replaced and the lock taken
again (WARNING), only this process's own stale session being waited for. When that fails:

- another session holds the lock (`DatabaseInUseError`): the lock is lost for good, `on_lost` is called at once;
- the server cannot be reached (or refuses the connection): the lock is not held for now (new orders stay
  paused) and the re-take is tried again every `retry_s` seconds; taken again within `outage_s` of the loss
  being seen, `on_retaken` is called; still failing past `outage_s`, the lock is lost for good (`on_lost`).

`on_lost` is called once per loss with a `LockLoss` saying which of the two happened; the lock is still tried
for at every check afterwards, so the process holds it again as soon as it can (what that means for the engine is
its owner's choice). Every message is one line (a driver's error text holds newlines).

The session also asks the server for TCP keepalives: when the engine's host dies, the server drops the session,
and the lock with it, within about 20 s instead of the kernel's two hours.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg2
from loguru import logger

from db._errors import StorageError
from db._url import DatabaseUrl, make_database

__all__ = [
    "KEY_SQL",
    "RETRY_S",
    "SERVER_KEEPALIVES",
    "DatabaseInUseError",
    "LockLoss",
    "PgLockSession",
    "connect_for_lock",
    "error_text",
    "one_line",
]

KEY_SQL = "hashtextextended('bexec-engine:' || current_schema(), 0)"
"""The lock's key: one per schema (advisory locks are per database already)."""
SERVER_KEEPALIVES = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=2"
"""The server probes an idle lock session after 10 s and drops it after two unanswered probes 5 s apart."""
_HELD_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() "
    f"AND (classid::bigint << 32 | objid::bigint) = {KEY_SQL})"
)
_JOIN_S = 15.0  # a check blocked on a dead connection ends within the connection's own time limits
RETRY_S = 1.0
"""How often a lost lock is tried for while the server cannot be reached (the watch's period is longer)."""
OUTAGE_S = 25.0
"""How long a lost lock is tried for while the server cannot be reached before it is lost for good (default)."""


class DatabaseInUseError(StorageError, RuntimeError):
    """Another engine holds the database's instance lock: this one must not start on it."""


@dataclass(frozen=True)
class LockLoss:
    """A lock lost for good: `reason` (one line) says what was lost and why it could not be taken again."""

    reason: str
    held_elsewhere: bool
    """True: another session holds the lock. False: the server could not be reached (or refused the
    connection) for the whole of the session's `outage_s`."""

    def __str__(self) -> str:
        return self.reason


def one_line(exc: BaseException) -> str:
    """`exc` as ``Type: message`` on one line (psycopg2's texts end lines with a newline, some hold several)."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


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
        outage_s: how long a lost lock is tried for while the server cannot be reached (see the module docstring).
        now: a monotonic clock in seconds (tests inject one).
    """

    def __init__(
        self,
        conn: Any,
        retake: Callable[[], Any],
        what: str,
        *,
        outage_s: float = OUTAGE_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self._conn: Any = conn
        self._retake = retake
        self._outage_s = outage_s
        self._now = now
        self._mutex = threading.Lock()
        self._closed = threading.Event()
        self._lost_at: float | None = None  # when the current loss was seen (None: held)
        self._unheld = False  # `on_unheld` called for the current loss
        self._lost = False  # `on_lost` called for the current loss
        self._on_lost: Callable[[LockLoss], None] = lambda _loss: None
        self._on_unheld: Callable[[str], None] = lambda _reason: None
        self._on_retaken: Callable[[], None] = lambda: None
        self._failure_told = False  # the first failed retake of a loss was logged (WARNING)
        self._thread: threading.Thread | None = None

    def watch(
        self,
        on_lost: Callable[[LockLoss], None],
        every_s: float,
        *,
        on_unheld: Callable[[str], None] | None = None,
        on_retaken: Callable[[], None] | None = None,
        retry_s: float = RETRY_S,
    ) -> None:
        """Check the lock every `every_s` seconds (every `retry_s` while it is not held) from a daemon thread until
        `close` (see the module docstring); the callbacks run on that thread."""
        self._on_lost = on_lost
        if on_unheld is not None:
            self._on_unheld = on_unheld
        if on_retaken is not None:
            self._on_retaken = on_retaken
        if self._thread is None and not self._closed.is_set():
            self._thread = threading.Thread(
                target=self._run, args=(every_s, min(every_s, retry_s)), name="db-lock-watch", daemon=True
            )
            self._thread.start()

    def _run(self, every_s: float, retry_s: float) -> None:
        # An Event wait, not a sleep: `close` ends it at once.
        while not self._closed.wait(retry_s if self._lost_at is not None and not self._lost else every_s):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the watch must outlive any one check
                logger.opt(exception=exc).error("database lock {}: the check failed: {}", self.what, one_line(exc))

    def check(self) -> bool:
        """Check the lock now, re-taking it if its session was lost; True while it is held."""
        tell: Callable[[], None] | None = None
        with self._mutex:
            if self._closed.is_set():
                return False
            problem = self._problem()
            if problem is None:
                return True
            if self._lost_at is None:
                self._lost_at, self._failure_told = self._now(), False
            if not self._unheld and not self._lost:
                # New orders pause before the retake, which may wait its 25 s: they resumed only after it failed.
                self._unheld = True
                logger.warning("database lock {} not held ({}): new orders pause while it is taken again",
                               self.what, problem)  # fmt: skip
                self._on_unheld(problem)
            self._drop()
            try:
                self._conn = self._retake()
            except Exception as exc:  # noqa: BLE001 - DatabaseInUseError, psycopg2.Error: not held, reported below
                tell = self._failed(problem, exc)
            else:
                if self._closed.is_set():
                    # `close` gave up waiting for this check (a retake can take its connect and lock waits): the
                    # engine has stopped, so the lock it just got must not outlive it in this process.
                    self._drop()
                    return False
                tell = self._retaken(problem)
            held = self._conn is not None
        if tell is not None:
            tell()  # outside the mutex: the owner may release the lock (which takes it)
        return held

    def _retaken(self, problem: str) -> Callable[[], None] | None:
        assert self._lost_at is not None
        lost_for = self._now() - self._lost_at
        paused, lost = self._unheld and not self._lost, self._lost
        self._lost_at, self._unheld, self._lost = None, False, False
        if lost:
            logger.warning("database lock {} re-taken after it was lost ({})", self.what, problem)
        elif paused:
            logger.warning("database lock {} re-taken after {:.1f} s without it ({})", self.what, lost_for, problem)
            return self._on_retaken
        else:
            logger.warning("database lock {} lost ({}) and re-taken at once: engine goes on", self.what, problem)
        return None

    def _failed(self, problem: str, exc: Exception) -> Callable[[], None] | None:
        assert self._lost_at is not None
        lost_for = self._now() - self._lost_at
        held_elsewhere = isinstance(exc, DatabaseInUseError)
        if held_elsewhere:
            reason = f"{problem}; another session holds it now: {one_line(exc)}"
        else:
            reason = (
                f"{problem}; taking it again failed for {lost_for:.1f} s, the server cannot be reached or refuses "
                f"the connection: {one_line(exc)}"
            )
        if self._lost:
            logger.debug("database lock {} still lost: {}", self.what, reason)
            return None
        if held_elsewhere or lost_for >= self._outage_s:
            self._lost = True
            logger.critical("database lock {} lost: {}", self.what, reason)
            loss = LockLoss(reason, held_elsewhere)
            return lambda: self._on_lost(loss)
        if self._failure_told:
            logger.debug("database lock {} still not held: {}", self.what, reason)
            return None
        # New orders paused when the loss was seen (`check`): the first failure of the loss says why, in the
        # server's own words.
        self._failure_told = True
        logger.warning("database lock {} not held: {}; tried again until {:g} s have passed", self.what, reason,
                       self._outage_s)  # fmt: skip
        return None

    def _problem(self) -> str | None:
        if self._conn is None:
            return "its session was lost earlier"
        try:
            with self._conn.cursor() as cur:
                cur.execute(_HELD_SQL)
                row = cur.fetchone()
        except psycopg2.Error as exc:
            return f"its session ended ({one_line(exc)})"
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
