"""`with_password`: the configured `database.password` merged into the URL reaches the driver; never two passwords."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from db import DatabaseUrlError, SecretUrl, connect, make_database, parse_url, with_password

PASSWORD = "s3cret-Pw@/:%?#x"
URL = "postgresql://bexec@db.example:5432/bexec?application_name=x"

# Any text a secret file or an environment variable can hold (lone surrogates cannot be UTF-8 encoded).
any_password = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


def test_password_is_merged_and_reaches_the_driver() -> None:
    url = with_password(URL, PASSWORD)
    spec = parse_url(url)
    assert (spec.user, spec.password, spec.host, spec.port, spec.dbname) == (
        "bexec",
        PASSWORD,
        "db.example",
        5432,
        "bexec",
    )
    assert spec.params == (("application_name", "x"),)
    assert make_database(url).connect_params["password"] == PASSWORD


def test_result_masks_its_password_in_repr() -> None:
    url = with_password(URL, PASSWORD)
    assert isinstance(url, SecretUrl)
    assert repr(url) == repr("postgresql://bexec:***@db.example:5432/bexec?application_name=x")
    assert PASSWORD not in repr(url)
    assert "s3cret" not in repr(url)


@pytest.mark.parametrize("password", [None, ""])
def test_without_password_the_url_is_unchanged(password: str | None) -> None:
    for url in (URL, "postgresql://bexec:inline@db.example/bexec", "sqlite:///data/x.sqlite"):
        resolved = with_password(url, password)
        assert resolved == url
        assert isinstance(resolved, SecretUrl)


@given(password=any_password)
def test_any_password_round_trips(password: str) -> None:
    url = with_password(URL, password)
    assert parse_url(url).password == password
    assert repr(url) == repr("postgresql://bexec:***@db.example:5432/bexec?application_name=x")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://bexec:other-secret@db.example/bexec", "carries a password and database.password is set"),
        ("postgresql://bexec:@db.example/bexec", "carries a password and database.password is set"),
        ("sqlite:///data/x.sqlite", "SQLite takes no password"),
        ("postgresql://db.example/bexec", "needs a user"),
        ("postgresql://:other-secret@db.example/bexec", "needs a user"),
        ("postgresql://bexec:other/secret@db.example/bexec", "'@' after its host"),
    ],
)
def test_conflicts_are_clear_errors_without_either_password(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message) as info:
        with_password(url, PASSWORD)
    text = str(info.value)
    assert PASSWORD not in text
    assert "s3cret" not in text
    assert "other" not in text
    assert "secret" not in text


@pytest.mark.postgres
def test_postgresql_connection_is_made_with_the_password(pg_url: str) -> None:
    # The test server trusts local connections, so it accepts any password; libpq still reports the one it
    # was given, which proves the password reached the real connection.
    assert urlsplit(pg_url).password is None
    db = connect(with_password(pg_url, PASSWORD), apply_migrations=False)
    try:
        assert db.connection().info.password == PASSWORD
    finally:
        db.close()
