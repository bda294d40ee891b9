"""Database URLs, connection errors and password masking."""

from __future__ import annotations

import socket

import pytest

from db import (
    DatabaseAuthError,
    DatabaseUnavailableError,
    DatabaseUrlError,
    connect,
    mask_url,
    parse_url,
)

SECRET = "s3cr3t-Pa55"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_parse_sqlite_relative_and_absolute() -> None:
    assert parse_url("sqlite:///data/x.sqlite").path == "data/x.sqlite"
    assert parse_url("sqlite:////tmp/x.sqlite").path == "/tmp/x.sqlite"


def test_parse_postgresql_and_mask() -> None:
    spec = parse_url(f"postgresql://bot:{SECRET}@db.example:6543/trades?application_name=x")
    assert (spec.host, spec.port, spec.user, spec.dbname) == ("db.example", 6543, "bot", "trades")
    assert spec.password == SECRET
    for text in (str(spec), repr(spec), spec.masked()):
        assert SECRET not in text
    assert "bot:***@db.example:6543/trades" in spec.masked()
    assert mask_url(f"postgresql://u:{SECRET}@h/db") == "postgresql://u:***@h/db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"mysql://u:{SECRET}@h/db", "unsupported database URL scheme"),
        (f"postgresql://u:{SECRET}@h:notaport/db", "malformed"),
        (f"postgresql://u:{SECRET}@/db", "needs a host"),
        (f"postgresql://u:{SECRET}@h/", "database name"),
        (f"postgresql://:{SECRET}@h/db", "needs a user"),
        (f"postgresql://u:{SECRET}@h/db?sslcert=x", "unsupported postgresql URL parameters"),
        ("sqlite://relative", "three slashes"),
        ("sqlite:///", "no file path"),
        ("not a url", "unsupported database URL scheme"),
    ],
)
def test_bad_urls_are_clear_and_masked(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message) as info:
        parse_url(url)
    assert SECRET not in str(info.value)


def test_unreachable_server_is_unavailable_and_masked() -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:{_closed_port()}/postgres"
    with pytest.raises(DatabaseUnavailableError, match="cannot reach database") as info:
        connect(url, connect_timeout=1)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None  # the driver error (with its DSN) is not chained


@pytest.mark.postgres
def test_wrong_credentials_and_missing_database(pg_admin_dsn: str) -> None:
    from urllib.parse import urlsplit

    hostport = urlsplit(pg_admin_dsn).netloc.split("@")[-1]
    with pytest.raises(DatabaseAuthError) as info:
        connect(f"postgresql://no_such_role_x:{SECRET}@{hostport}/postgres", connect_timeout=2)
    assert SECRET not in str(info.value)
    assert "no_such_role_x" in str(info.value)
    with pytest.raises(DatabaseAuthError, match="does not exist") as info:
        connect(f"postgresql://postgres:{SECRET}@{hostport}/no_such_db_x", connect_timeout=2)
    assert SECRET not in str(info.value)


def test_sqlite_uses_wal_and_full_sync(sqlite_url: str) -> None:
    db = connect(sqlite_url)
    try:
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        db.close()
