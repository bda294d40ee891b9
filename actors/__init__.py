"""pykka actors: thin shells over the pure code in `engine` and the storage in `db`."""

from actors.persistence import (
    Durability,
    Health,
    HealthReport,
    PersistenceActor,
    PersistenceHandle,
    PersistenceProxy,
    PersistenceSettings,
    start_persistence,
)

__all__ = [
    "Durability",
    "Health",
    "HealthReport",
    "PersistenceActor",
    "PersistenceHandle",
    "PersistenceProxy",
    "PersistenceSettings",
    "start_persistence",
]
