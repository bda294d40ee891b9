"""Storage errors with operational meaning, and the transient/permanent split.

```
StorageError
├── DatabaseUrlError          the URL is malformed or names an unsupported backend (fix the config)
├── DatabaseAuthError         the server refused the credentials (fix the config)
├── DatabaseUnavailableError  the server cannot be reached right now (retry later, spool meanwhile)
└── DatabaseSchemaError       the schema is newer than this engine knows (run a newer engine): permanent,
                              retrying cannot help, so start-up must stop rather than spool
```
No message ever contains a password: URLs are masked before they are formatted.
"""

from __future__ import annotations

import sqlite3

import peewee
import psycopg2


class StorageError(Exception):
    """Base class of every storage error raised by `db`."""


class DatabaseUrlError(StorageError):
    """The database URL is malformed or unsupported."""


class DatabaseAuthError(StorageError):
    """The database server rejected the credentials or the database does not exist."""


class DatabaseUnavailableError(StorageError):
    """The database cannot be reached now; the operation may succeed later."""


class DatabaseSchemaError(StorageError):
    """The database's schema is newer than this engine knows (a newer engine migrated it).

    Permanent: the engine cannot know what the newer schema requires of its writes, so it writes nothing and must
    not start on this database. Not transient (`is_transient` is False), so it is never retried.
    """


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    peewee.OperationalError,
    peewee.InterfaceError,
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    sqlite3.OperationalError,
    sqlite3.InterfaceError,  # the writer runs BEGIN/COMMIT on the driver: its errors arrive unwrapped
    DatabaseUnavailableError,
    ConnectionError,
    TimeoutError,
)
"""Errors that mean "the connection or server is in trouble", not "this row is bad"."""


BAD_RECORD_ERRORS: tuple[type[BaseException], ...] = (
    peewee.IntegrityError,
    peewee.DataError,
    psycopg2.IntegrityError,
    psycopg2.DataError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
    # Raised while binding or serialising a row, before the server is involved: psycopg2 refuses NUL in a
    # string with a ValueError, JSON encoders a lone surrogate with a ValueError/TypeError. Taking them for an
    # outage spooled the record and replayed it forever, blocking every write behind it.
    ValueError,
    TypeError,
    # sqlite3 refuses an int outside INTEGER's 64 bits (a trade id, order id or error code >= 2**63) with an
    # OverflowError while binding; PostgreSQL says DataError for the same value. Taken for an outage, the record
    # was spooled and every replay hit it again: degraded for good, and no restart could get past it.
    OverflowError,
)
"""Errors that blame the data of one record (constraint, value out of range, unencodable text): retrying cannot
help."""


def is_bad_record(exc: BaseException) -> bool:
    """True when `exc` rejects a record's data rather than signalling a connection or server problem."""
    return isinstance(exc, BAD_RECORD_ERRORS)


def is_transient(exc: BaseException) -> bool:
    """True when `exc` says the database is unreachable or the connection broke (retry later).

    Integrity and data errors are permanent: retrying the same row can never succeed.
    """
    if is_bad_record(exc):
        return False
    return isinstance(exc, TRANSIENT_ERRORS)
