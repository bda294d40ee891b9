"""Messages and settings of the persistence actor: health reports, durability, tuning."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from db import StorageError


class Health(StrEnum):
    """Persistence health as reported upward."""

    OK = "ok"
    DEGRADED = "degraded"
    SPOOL_FULL = "spool_full"
    FAILED = "failed"
    """The persistence actor stopped on an unexpected error: nothing more is stored until a restart."""


class Durability(StrEnum):
    """Where `flush()` made the records durable."""

    DATABASE = "database"
    SPOOL = "spool"


@dataclass(frozen=True)
class HealthReport:
    """Sent to the listener on every health change.

    `accepting_orders` is False past the spool limit: the supervisor must stop taking new orders (keep
    tracking the live ones) until health returns to ok.
    """

    health: Health
    accepting_orders: bool
    reason: str
    spooled: int


HealthListener = Callable[[HealthReport], None]
"""Called from the persistence thread; must not block (typically `supervisor_ref.tell(...)`)."""


class NotDurableError(StorageError):
    """The records could not be made durable: neither the database nor the spool took them, or the database
    refused a write-ahead's own records (its create must not leave)."""


@dataclass(frozen=True)
class PersistenceSettings:
    """Tuning knobs (defaults suit production; tests shrink them)."""

    batch_size: int = 500
    spool_limit_bytes: int = 256 * 1024 * 1024
    memory_limit: int = 200_000
    """Records kept in memory when even the spool refuses writes (disk full); beyond this they are lost.
    `[database] buffer_max_rows` in the configuration (as `batch_size` and `spool_max_bytes` set the two above)."""
    max_retry_ticks: int = 250
    """Cap of the reconnect back-off, in ticks (the back-off doubles from one tick): 5 s at the default 20 ms
    batch interval."""
    max_retry_ms: int = 5_000
    """Cap of the reconnect back-off in the clock's time: a reconnect is tried at the first tick this long after
    the last attempt, however many ticks that is (a long batch interval)."""
    outage_log_ms: int = 30_000
    """While the database stays unreachable, one WARNING at most this often (with the count of failed attempts);
    the outage's first failed attempt and its end are logged at once."""
    connect_timeout_s: int = 3
