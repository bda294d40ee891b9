"""The engine's hold on its database's instance lock (`db.acquire_instance_lock`), and what losing it does.

`Engine.start` takes the lock before anything reads the database, and refuses to start without it (an
unreachable database included: another engine could be using it). While the engine runs, the lock is checked
every `LOCK_CHECK_S` seconds; one that is lost and cannot be taken again (a PostgreSQL restart after which another
engine got it first, a server still down) halts new orders through the root's stop-trading entrypoint
(`RootActor.on_critical`: halted until the engine restarts, with an alert), since two engines on one database
each take the other's requests for a crash's leftovers.
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

__all__ = ["LOCK_CHECK_S", "LOCK_RETAKE_WAIT_S", "LockGuard", "read_under_lock"]

_T = TypeVar("_T")

LOCK_CHECK_S = 5.0
"""How often the engine checks that it still holds its PostgreSQL lock (read at each start: tests lower it)."""
LOCK_RETAKE_WAIT_S = 25.0
"""How long a lost lock is waited for before the engine halts (the server's keepalives end a session cut off by
a network drop within about 20 s)."""


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
        lock.watch(self.on_lost, every_s=LOCK_CHECK_S)
        return lock

    def bind(self, root: Any) -> None:
        """From now on a lost lock halts through `root` (its `on_critical`: halt and alert)."""
        self._root = root

    def on_lost(self, reason: str) -> None:
        """The lock is lost and could not be taken again: halt new orders until the engine restarts."""
        from actors.root import HALT_STOP_TRADING
        from engine.exchange import StopTrading

        error = StopTrading(
            f"database lock lost ({reason}): another engine may be running on this database; new orders are "
            "halted until this engine is restarted",
            operation="instance_lock",
        )
        root = self._root
        if root is not None:
            try:
                root.proxy().on_critical.defer(error)  # told, never asked: this runs on the lock's watch thread
                return
            except pykka.ActorDeadError:
                logger.error("database lock lost while the root actor is not running: halting directly")
        self._state.halt(HALT_STOP_TRADING, f"{type(error).__name__}: {error}")
        self._alert("stop_trading", str(error))


def read_under_lock(database_url: str, read: Callable[[peewee.Database], _T]) -> _T:
    """`read(db)` on the database at `database_url` (migrated first) under its instance lock, let go of before this
    returns: while another engine runs on the database, nothing is read or written (the daemon's look at what an
    earlier run left open, before `Engine.start` takes the lock for good).

    Raises:
        DatabaseInUseError: another engine holds the lock.
        StorageError: the database cannot be reached (`LockUnavailableError` included), its URL is malformed, its
            credentials are refused, or its schema is newer than this engine knows.
    """
    from db._lock import acquire_instance_lock
    from db._url import connect

    lock = acquire_instance_lock(database_url, required=True)
    try:
        db = connect(database_url)
        try:
            return read(db)
        finally:
            db.close()
    finally:
        lock.release()
