"""The engine's hold on its database's instance lock (`db.acquire_instance_lock`), and what losing it does.

`Engine.start` takes the lock before anything reads the database, and refuses to start without it (an
unreachable database included: another engine could be using it). While the engine runs, the lock is checked
every `LOCK_CHECK_S` seconds and a lost one taken again at once. While it cannot be, because the server cannot be
reached, new orders pause (halt cause `LOCK_PAUSE`, WARNING; tracking goes on) and the lock is tried for every
second: taken again within `LOCK_RETAKE_WAIT_S`, new orders resume (the re-take proves no other session holds it).
Lost for good (another session holds it: a restart after which another engine got it first; or the server
stayed unreachable for `LOCK_RETAKE_WAIT_S`), new orders halt until the engine restarts, through the root's
stop-trading entrypoint (`RootActor.on_critical`: an alert), since two engines on one database each take the
other's requests for a crash's leftovers. That halt stays even if the lock is taken again later: while it was not
held for longer than that, another engine may have started on the database, taken those requests and stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pykka
from loguru import logger

if TYPE_CHECKING:
    import peewee

    from actors.root import EngineState
    from db import InstanceLock
    from db._lockwatch import LockLoss

__all__ = ["LOCK_CHECK_S", "LOCK_PAUSE", "LOCK_RETAKE_WAIT_S", "LockGuard", "read_under_lock"]

_T = TypeVar("_T")

LOCK_CHECK_S = 5.0
"""How often the engine checks that it still holds its PostgreSQL lock (read at each start: tests lower it)."""
LOCK_RETAKE_WAIT_S = 25.0
"""How long a lost lock is waited for (another session letting go of it), and tried for while the server cannot be
reached, before the engine halts (the server's keepalives end a session cut off by a network drop within about
20 s)."""
LOCK_PAUSE = "database_lock"
_GATEWAY_ASK_S = 5.0
"""Halt cause: the lock's session was lost and the server cannot be reached to take it again (yet): lifted when
it is taken again within `LOCK_RETAKE_WAIT_S`."""


class LockGuard:
    """Takes the lock for one engine and halts that engine's new orders should the lock be lost for good.

    Args:
        state: the engine-wide state (halted directly while the root is not running yet).
        alert: the engine's alert sink, for the same reason.
    """

    def __init__(self, state: EngineState, alert: Callable[[str, str], None]) -> None:
        self._state = state
        self._alert = alert
        self._root: Any = None

    def take(self, database_url: str) -> InstanceLock:
        """Take and watch the lock of `database_url`.

        Raises:
            DatabaseInUseError: another engine holds it.
            LockUnavailableError: the database cannot be reached (both RuntimeErrors).
        """
        from db._lock import acquire_instance_lock

        lock = acquire_instance_lock(database_url, retake_wait_s=LOCK_RETAKE_WAIT_S, required=True)
        lock.watch(self.on_lost, every_s=LOCK_CHECK_S, on_unheld=self.on_unheld, on_retaken=self.on_retaken)
        return lock

    def bind(self, root: Any) -> None:
        """From now on a lost lock halts through `root` (its `on_critical`: halt and alert)."""
        self._root = root

    def on_unheld(self, reason: str) -> None:
        """The lock's session was found lost: new orders pause while it is taken again (before that is tried: the
        retake may wait for the server to end a stale session, and another engine may take the lock meanwhile)."""
        self._state.halt(
            LOCK_PAUSE,
            f"database lock not held ({reason}): new orders pause while it is taken again (halted until a restart "
            f"if it is not within {LOCK_RETAKE_WAIT_S:g} s)",
        )

    def on_retaken(self) -> None:
        """The lock is held again after `on_unheld`, within the bound: new orders resume."""
        ctx = self._state.lift(LOCK_PAUSE)
        if ctx.halted:
            logger.warning("database lock held again; new orders still halted: {}", ctx.halt_reason)
        else:
            logger.warning("database lock held again: new orders resume")

    def on_lost(self, loss: LockLoss) -> None:
        """The lock is lost for good: halt new orders until the engine restarts."""
        from actors.root import HALT_STOP_TRADING
        from engine.exchange import StopTrading

        if loss.held_elsewhere:
            why = "another engine may be running on this database"
        else:
            why = (
                f"the database could not be reached for {LOCK_RETAKE_WAIT_S:g} s to take it again (another engine "
                "may have used the database meanwhile)"
            )
        error = StopTrading(
            f"database lock lost ({loss.reason}): {why}; new orders are halted and no order of the requests under way "
            "is sent any more until this engine is restarted",
            operation="instance_lock",
        )
        # Here, at once (the root hears of it told, later): no order slips in between; then the pause is over.
        self._state.halt(HALT_STOP_TRADING, f"{type(error).__name__}: {error}")
        self._state.lift(LOCK_PAUSE)
        root = self._root
        if root is not None:
            try:
                # Another engine may run these requests now: no create of this one's leaves any more (a fallback both
                # sent bought twice). Cancels and lookups still go; the operator stops this engine.
                gateway = root.proxy().gateway.get(timeout=_GATEWAY_ASK_S)
                if gateway is not None:
                    gateway.close_creates()
            except (pykka.ActorDeadError, pykka.Timeout) as exc:
                logger.error("database lock lost: the gateway could not be closed to creates ({!r})", exc)
            try:
                root.proxy().on_critical.defer(error)  # told, never asked: this runs on the lock's watch thread
                return
            except pykka.ActorDeadError:
                logger.error("database lock lost while the root actor is not running: halting directly")
        self._alert("stop_trading", str(error))


def read_under_lock(database_url: str, read: Callable[[peewee.Database], _T]) -> _T | int:
    """`read(db)` on the database at `database_url` under its instance lock, let go of before this returns: while
    another engine runs on the database, nothing is read or written (the daemon's look at what an earlier run left
    open, before `Engine.start` takes the lock for good). Its schema version instead, with nothing read or written,
    when it is older than this engine's (0: a new database): the engine creates or migrates it as it starts, once
    its persistence knows what its spool holds (a migration here would decide the database's client order ids
    without it: `db.migrate`).

    Raises:
        DatabaseInUseError: another engine holds the lock.
        StorageError: the database cannot be reached (`LockUnavailableError` included), its URL is malformed, its
            credentials are refused, or its schema is newer than this engine knows.
    """
    from db._errors import DatabaseSchemaError
    from db._lock import acquire_instance_lock
    from db._migrations import LATEST_VERSION, current_version, refuse_newer_schema
    from db._url import connect, parse_url

    lock = acquire_instance_lock(database_url, required=True)
    try:
        db = connect(database_url, apply_migrations=False)
        try:
            version = current_version(db)
            try:
                refuse_newer_schema(version)
            except DatabaseSchemaError as exc:  # named as `connect` names it (masked)
                raise DatabaseSchemaError(f"{parse_url(database_url).masked()}: {exc}") from None
            return read(db) if version >= LATEST_VERSION else version
        finally:
            db.close()
    finally:
        lock.release()
