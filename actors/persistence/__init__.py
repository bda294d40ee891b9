"""Persistence actor: the only owner of the database connection.

Writes by `tell`, batched by size and tick, committed with idempotent upserts; `flush()` barrier;
outage spool with replay; health reported upward through a listener.
"""

from actors.persistence._actor import (
    RECORD_TYPES,
    PersistenceActor,
    PersistenceHandle,
    PersistenceProxy,
    RecordBatch,
    Tick,
    WriteAheadRecord,
    start_persistence,
)
from actors.persistence._core import PersistenceCore
from actors.persistence._spool import Spool
from actors.persistence._types import (
    Durability,
    Health,
    HealthListener,
    HealthReport,
    NotDurableError,
    PersistenceSettings,
)

__all__ = [
    "RECORD_TYPES",
    "Durability",
    "Health",
    "HealthListener",
    "HealthReport",
    "NotDurableError",
    "PersistenceActor",
    "PersistenceCore",
    "PersistenceHandle",
    "PersistenceProxy",
    "PersistenceSettings",
    "RecordBatch",
    "Spool",
    "Tick",
    "WriteAheadRecord",
    "start_persistence",
]
