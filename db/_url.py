"""Database URLs and connections: `sqlite:///path` and `postgresql://user[:pw]@host[:port]/db`.

The password reaches the connection either inside the URL or as the configured `database.password`, which
`with_password` merges into the URL (never both: that is an error). Every message that shows a URL masks the
password (`mask_url`, `DatabaseUrl.masked`).

`connect()` opens the connection in the calling thread, which then owns it (peewee connections are
thread-local); in the engine that thread is the persistence actor's.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit, urlunsplit

import peewee
import psycopg2
from loguru import logger

from db._errors import DatabaseAuthError, DatabaseSchemaError, DatabaseUnavailableError, DatabaseUrlError

# One allow-list and one reading of the query for both: check-config refuses what connecting would.
from engine._db_urls import mask_query_password, unsupported_params

# Custom column types resolved per backend, so one model serves both databases.
# Unconstrained NUMERIC stores any finite decimal exactly (NUMERIC(38,18) would silently round an
# average price carrying more than 18 fractional digits). SQLite gets TEXT: NUMERIC affinity would
# turn "0.1" into a binary float.
_SQLITE_TYPES = {"EXACTDECIMAL": "TEXT", "UTCDATETIME": "TEXT"}
_PG_TYPES = {"EXACTDECIMAL": "NUMERIC", "UTCDATETIME": "TIMESTAMP"}

# WAL with synchronous=FULL: every commit fsyncs the WAL, so a batch reported durable survives power
# loss, not just a process crash (NORMAL may drop the last commits on power loss). This is a money
# journal and the batching amortises the fsync over hundreds of rows, so FULL costs little.
SQLITE_PRAGMAS: dict[str, object] = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 5000,
}

# Server-side limits on every PostgreSQL session, so nothing the server waits on can hold the persistence thread
# (and every write-ahead gate behind it) indefinitely while health still says ok. A lock another session holds
# (a stuck tool, a manual DDL, an idle-in-transaction client) fails the statement after LOCK_TIMEOUT_MS, and any
# statement is cut after STATEMENT_TIMEOUT_MS: both raise an OperationalError (LockNotAvailable, QueryCanceled),
# which is transient, so persistence spools, reports degraded and retries. Far above what normal work needs: a
# commit of a full batch (500 rows) takes milliseconds and takes only row locks, which the engine's single writer
# never contends; a read goes through an index. Migrations lift the statement limit for their own transactions
# (`db._migrations`): a DDL over a big table may legitimately run for minutes.
LOCK_TIMEOUT_MS = 5_000
STATEMENT_TIMEOUT_MS = 30_000
# A write on a connection whose server vanished mid-statement is noticed after this long (the kernel's
# retransmissions would take about 15 minutes); keepalives cover only an idle connection. The same 20 s as the
# keepalives below give an idle one (10 s idle + 2 probes 5 s apart): on Linux it also bounds their probing.
TCP_USER_TIMEOUT_MS = 20_000

_AUTH_PATTERNS = ("password authentication failed", "authentication failed", "no password supplied")
_MISSING_PATTERNS = ("does not exist",)


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed database URL. `str()` and `repr()` mask the password."""

    backend: str
    path: str = ""
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = field(default="", repr=False)
    dbname: str = ""
    params: tuple[tuple[str, str], ...] = ()

    def masked(self) -> str:
        """The URL with any password replaced by `***`."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.path}"
        auth = self.user + (":***" if self.password else "")
        # parse_url refuses a `password` parameter; masked anyway for a DatabaseUrl built by hand.
        query = "&".join(f"{k}={'***' if k.lower() == 'password' else v}" for k, v in self.params)
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.masked()


# `user:password@` right after `scheme://`. The password runs to the LAST `@` of the URL, as urlsplit takes it up
# to the last `@` of the host part: stopping at the first `@` showed the rest of a password containing one. The URL
# ends only at the end of its line or where another URL starts (after a space): a password may hold spaces, which
# urlsplit reads as part of it, so stopping at whitespace showed the rest of such a password. Going past the host
# part (a `/`, `?` or `#` in the password, which urlsplit cannot read, or an `@` later in the same text) masks more
# than needed, never less.
_USERINFO_RE = re.compile(r"(://[^:/@\s]*):(?:(?!\s+[A-Za-z][A-Za-z0-9+.-]*://)[^\r\n])*@")


def mask_url(url: str) -> str:
    """Mask the password of any URL-looking text (for messages built from raw config strings).

    Everything between ``scheme://user:`` and the last ``@`` of the URL becomes ``***``, so a password
    containing ``@``, ``:``, ``/``, ``%`` or a space is hidden whole; so does the value of a ``password=`` parameter.
    The URL runs to the end of its line, or to the next URL of the text.
    """
    return mask_query_password(_USERINFO_RE.sub(r"\1:***@", url))


class SecretUrl(str):
    """A database URL that may carry a password; `repr()` masks it.

    Returned by `with_password`, so a dataclass or traceback holding the URL does not show the password. In
    every other respect it is the plain URL string (it connects like one).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(mask_url(str(self)))


def with_password(url: str, password: str | None) -> str:
    """The URL to connect with: `url`, carrying `password` (the configured ``database.password``) if one is given.

    The password is percent-encoded into the URL, so it may hold any character; `parse_url` decodes it again.
    Without a password `url` is returned as it is. The result masks the password in its `repr()`.

    Raises:
        DatabaseUrlError: a password is given but `url` carries one too (which one is right cannot be guessed),
            `url` is not a PostgreSQL URL (SQLite takes no password), or `url` has an ``@`` after its host. The
            message never contains either password.
    """
    if not password:
        return SecretUrl(url)
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise DatabaseUrlError(f"malformed database URL {shown!r}") from None
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise DatabaseUrlError(
            f"database.password is set but the database URL {shown!r} is not postgresql:// (SQLite takes no "
            "password): unset database.password"
        )
    _refuse_at_after_host(parts, shown)
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if not at or not userinfo.split(":", 1)[0]:
        raise DatabaseUrlError(f"postgresql URL needs a user (postgresql://user@host/db): {shown!r}")
    if ":" in userinfo:
        raise DatabaseUrlError(
            f"the database URL {shown!r} carries a password and database.password is set too: keep only one "
            "(remove ':password' from the URL or unset database.password)"
        )
    netloc = f"{userinfo}:{quote(password, safe='')}@{hostinfo}"
    return SecretUrl(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))


def _refuse_at_after_host(parts: SplitResult, shown: str) -> None:
    # urlsplit ends the host part at the first `/`, `?` or `#`: a password holding one of them unencoded is cut
    # there and its tail read as host, port, path or query, which error messages would then quote.
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        raise DatabaseUrlError(
            f"postgresql URL {shown!r} has an '@' after its host: percent-encode '/', '?', '#' and '@' in the user "
            "and password (%2F, %3F, %23, %40)"
        )


def parse_url(url: str) -> DatabaseUrl:
    """Parse and validate a database URL.

    Raises:
        DatabaseUrlError: the URL is malformed or its scheme is unsupported (password masked).
    """
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        # Not the error text: it may quote the host part, password included.
        raise DatabaseUrlError(f"malformed database URL {shown!r}: the host part cannot be read") from None
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        if parts.netloc:
            raise DatabaseUrlError(f"sqlite URL must be sqlite:///path (three slashes), got {shown!r}")
        # SQLAlchemy's convention: sqlite:///rel/path is relative, sqlite:////abs/path is absolute.
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise DatabaseUrlError(f"sqlite URL has no file path: {shown!r}")
        return DatabaseUrl(backend="sqlite", path=path)
    if scheme in ("postgresql", "postgres"):
        _refuse_at_after_host(parts, shown)
        try:
            # Safe to quote now: the port comes after the last '@', so it holds no part of the password.
            port = parts.port
        except ValueError as exc:
            raise DatabaseUrlError(f"malformed database URL {shown!r}: {exc}") from None
        if not parts.hostname:
            raise DatabaseUrlError(f"postgresql URL needs a host: {shown!r}")
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname or "/" in dbname:
            raise DatabaseUrlError(f"postgresql URL needs exactly one database name: {shown!r}")
        if not parts.username:
            raise DatabaseUrlError(f"postgresql URL needs a user (postgresql://user@host/db): {shown!r}")
        # The same reading of the query as configuration validation: a parameter without '=' is counted, never
        # named (it may be a misplaced password), and the URL is quoted without its query.
        unknown, bare = unsupported_params(url)
        if unknown or bare:
            where = mask_url(urlunsplit(parts._replace(query="", fragment="")))
            what = [f"unsupported postgresql URL parameters {unknown}"] if unknown else []
            what += [f"{bare} URL parameter(s) without '='"] if bare else []
            hint = " (put a password in the user part or in database.password)" if "password" in unknown else ""
            raise DatabaseUrlError(f"{' and '.join(what)} in {where!r}{hint}")
        params = tuple(parse_qsl(parts.query, keep_blank_values=True))
        return DatabaseUrl(
            backend="postgresql",
            host=parts.hostname,
            port=port or 5432,
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            dbname=dbname,
            params=params,
        )
    raise DatabaseUrlError(
        f"unsupported database URL scheme {parts.scheme!r} in {shown!r}; "
        "use sqlite:///path or postgresql://user@host:port/db"
    )


def make_database(
    url: str | DatabaseUrl,
    *,
    connect_timeout: int = 5,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
) -> peewee.Database:
    """Build an unconnected peewee database for `url` (see `connect` for the opened form).

    A PostgreSQL session waits at most `lock_timeout_ms` for a lock and runs a statement at most
    `statement_timeout_ms` (0: no limit); an ``options`` parameter of the URL is applied after these, so its own
    ``-c lock_timeout=...`` wins. SQLite waits for its file lock `busy_timeout` instead (`SQLITE_PRAGMAS`).
    """
    spec = parse_url(url) if isinstance(url, str) else url
    if spec.backend == "sqlite":
        if spec.path != ":memory:":
            Path(spec.path).parent.mkdir(parents=True, exist_ok=True)
        return peewee.SqliteDatabase(
            spec.path, pragmas=SQLITE_PRAGMAS, field_types=_SQLITE_TYPES, check_same_thread=True
        )
    params: dict[str, Any] = {
        "host": spec.host,
        "port": spec.port,
        "user": spec.user,
        "connect_timeout": connect_timeout,
        "application_name": "bexec",
        # Notice a dead server within ~20 s instead of the kernel's two hours.
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 2,
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
    }
    if spec.password:
        params["password"] = spec.password
    params.update(dict(spec.params))
    # The server applies `-c` settings in order: the URL's options come last so an operator can override ours.
    limits = f"-c lock_timeout={lock_timeout_ms} -c statement_timeout={statement_timeout_ms}"
    params["options"] = f"{limits} {params['options']}" if params.get("options") else limits
    return peewee.PostgresqlDatabase(spec.dbname, field_types=_PG_TYPES, **params)


def open_connection(db: peewee.Database, spec: DatabaseUrl) -> None:
    """Open `db`'s connection in this thread, translating failures into storage errors.

    Raises:
        DatabaseAuthError: credentials rejected or database missing.
        DatabaseUnavailableError: server unreachable or SQLite file unusable.
    """
    try:
        db.connect(reuse_if_open=True)
        if spec.backend == "postgresql":
            # Sessions store and return naive UTC; pin the zone so a server default cannot shift times.
            db.execute_sql("SET TIME ZONE 'UTC'")
    except (peewee.OperationalError, psycopg2.OperationalError, sqlite3.OperationalError) as exc:
        message = _clean(str(exc), spec)
        lowered = message.lower()
        if spec.backend == "postgresql" and any(p in lowered for p in _AUTH_PATTERNS):
            raise DatabaseAuthError(f"database {spec.masked()} rejected the credentials: {message}") from None
        if spec.backend == "postgresql" and any(p in lowered for p in _MISSING_PATTERNS):
            raise DatabaseAuthError(f"database {spec.masked()}: {message}") from None
        raise DatabaseUnavailableError(f"cannot reach database {spec.masked()}: {message}") from None


def connect(
    url: str,
    *,
    apply_migrations: bool = True,
    connect_timeout: int = 5,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
) -> peewee.Database:
    """Open the database at `url` in the calling thread and bring its schema up to date.

    The time limits are `make_database`'s.

    Raises:
        DatabaseUrlError, DatabaseAuthError, DatabaseUnavailableError: with the password masked.
        DatabaseSchemaError: the schema is newer than this engine knows; nothing was written, the connection is
            closed.
    """
    spec = parse_url(url)
    db = make_database(
        spec,
        connect_timeout=connect_timeout,
        lock_timeout_ms=lock_timeout_ms,
        statement_timeout_ms=statement_timeout_ms,
    )
    open_connection(db, spec)
    if apply_migrations:
        from db._migrations import migrate

        try:
            migrate(db)
        except DatabaseSchemaError as exc:
            db.close()
            raise DatabaseSchemaError(f"{spec.masked()}: {exc}") from None
    logger.info("database connected url={} backend={}", spec.masked(), spec.backend)
    return db


def _clean(message: str, spec: DatabaseUrl) -> str:
    text = " ".join(message.split())
    if spec.password:
        text = text.replace(spec.password, "***")
    return mask_url(text)
