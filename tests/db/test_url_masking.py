"""Password masking in database URLs and URL errors: a password holding `@`, `:`, `/`, `%`, `?` or `#` is hidden
whole (urlsplit takes the password up to the LAST `@` of the host part; masking once stopped at the first)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from db import DatabaseUrlError, mask_url, parse_url

HOST_TAIL = "db.example:5432/bexec"
MASKED = f"postgresql://bexec:***@{HOST_TAIL}"

# Upper-case letters no URL part or error message here contains, plus every character that ends or splits a URL
# part: any 4 characters of such a password found in a message can only have come from the password.
_SYMBOLS = "@:/%?#"
passwords = st.text(alphabet="QZXJKW" + _SYMBOLS, min_size=1, max_size=24)
passwords_with_symbols = passwords.filter(lambda pw: any(c in pw for c in _SYMBOLS))


def _chunks(password: str, size: int = 4) -> set[str]:
    """Every substring of `password` of `size` characters (the password itself when it is shorter)."""
    if len(password) < size:
        return {password} if any(c.isalpha() for c in password) else set()
    return {password[i : i + size] for i in range(len(password) - size + 1)}


def _assert_hidden(password: str, text: str) -> None:
    leaked = sorted(chunk for chunk in _chunks(password) if chunk in text)
    assert not leaked, f"password fragments {leaked} in {text!r}"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://bexec:p@ssw0rd@db.example/x", "postgresql://bexec:***@db.example/x"),
        (
            "postgresql://bexec:a@b@c@db.example:5432/x?sslmode=require",
            "postgresql://bexec:***@db.example:5432/x?sslmode=require",
        ),
        ("postgresql://bexec:pa/ss@db.example/x", "postgresql://bexec:***@db.example/x"),
        ("postgresql://bexec:pa:ss@db.example/x", "postgresql://bexec:***@db.example/x"),
        ("postgresql://bexec@db.example/x", "postgresql://bexec@db.example/x"),
        ("sqlite:///data/a@b.sqlite", "sqlite:///data/a@b.sqlite"),
        # two URLs in one message (a driver error quoting a DSN): each masked on its own
        (
            "from postgresql://u:a@b@h/x to postgresql://v:c@d@k/y",
            "from postgresql://u:***@h/x to postgresql://v:***@k/y",
        ),
    ],
)
def test_mask_url_hides_the_password_up_to_the_last_at(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("password", "tail"),
    [
        ("Pa@ssw0rd", "db.example:5432/bexec?sslmod=require"),  # typo in a parameter name
        ("Pa@ssw0rd", "db.example:54x2/bexec"),  # typo in the port
        ("Pa@ssw0rd", "db.example/"),  # no database name
        ("P4ss/w0rd", "db.example/bexec"),  # unencoded '/': urlsplit reads 'P4ss' as the port
        ("P4ss#w0rd", "db.example/bexec"),  # the same with '#' (or '?')
    ],
)
def test_url_errors_never_show_a_password_with_special_characters(password: str, tail: str) -> None:
    with pytest.raises(DatabaseUrlError) as info:
        parse_url(f"postgresql://bexec:{password}@{tail}")
    for chunk in _chunks(password):
        assert chunk not in str(info.value)


def test_a_password_with_at_sign_still_parses() -> None:
    assert parse_url("postgresql://bexec:Pa@ssw0rd@db.example/bexec").password == "Pa@ssw0rd"
    assert parse_url("postgresql://bexec:Pa%2Fss%40w0rd@db.example/bexec").password == "Pa/ss@w0rd"


@given(password=passwords)
def test_mask_url_never_shows_any_part_of_the_password(password: str) -> None:
    assert mask_url(f"postgresql://bexec:{password}@{HOST_TAIL}") == MASKED


@given(
    password=passwords_with_symbols,
    tail=st.sampled_from([HOST_TAIL, "db.example:54x2/bexec", f"{HOST_TAIL}?sslmod=require", "db.example/"]),
)
def test_url_errors_never_show_any_part_of_the_password(password: str, tail: str) -> None:
    url = f"postgresql://bexec:{password}@{tail}"
    try:
        spec = parse_url(url)
    except DatabaseUrlError as exc:
        _assert_hidden(password, str(exc))
    else:  # accepted as urlsplit reads it: what it shows is masked
        for text in (str(spec), repr(spec), spec.masked()):
            _assert_hidden(password, text)


# A space in the password (urlsplit reads it as part of it): masking once stopped at whitespace and showed the rest.
SPACED = ["QZ XJ", "QZ X@JK", "QZ/X JK", "QZ X:JK", "QZ#X JK", "QZ X?JK", "QZ X%JK", " QZ@X ", "Q@Z/X J#K?W%:Q"]


@pytest.mark.parametrize("password", SPACED)
@pytest.mark.parametrize("tail", ["h:99999/db", "h:99x/db", "h/db?sslmod=x", "h/", "h/db"])
def test_url_errors_and_masks_never_show_a_password_with_a_space(password: str, tail: str) -> None:
    url = f"postgresql://bexec:{password}@{tail}"
    try:
        spec = parse_url(url)
    except DatabaseUrlError as exc:
        _assert_hidden(password, str(exc))
    else:
        for text in (str(spec), repr(spec), spec.masked()):
            _assert_hidden(password, text)
    _assert_hidden(password, mask_url(url))
    _assert_hidden(password, mask_url(f"connecting to {url} failed: contact dba@example"))


def test_mask_url_with_spaced_passwords_keeps_two_urls_and_the_text_after_them() -> None:
    text = "from postgresql://u:a b@c@h/x to postgresql://v:d e@k/y\nask dba@example"
    assert mask_url(text) == "from postgresql://u:***@h/x to postgresql://v:***@k/y\nask dba@example"


# Everything but a space followed by `scheme://` inside the password: that reads as a second URL of the text.
passwords_with_space = st.text(alphabet="QZXJKW " + _SYMBOLS, min_size=1, max_size=24).filter(
    lambda pw: " " in pw and not re.search(r"\s[A-Za-z][A-Za-z0-9+.-]*://", pw)
)


@given(
    password=passwords_with_space,
    tail=st.sampled_from([HOST_TAIL, "db.example:99999/bexec", f"{HOST_TAIL}?sslmod=require", "db.example/"]),
)
def test_no_part_of_a_password_with_a_space_is_ever_shown(password: str, tail: str) -> None:
    url = f"postgresql://bexec:{password}@{tail}"
    _assert_hidden(password, mask_url(url))
    try:
        spec = parse_url(url)
    except DatabaseUrlError as exc:
        _assert_hidden(password, str(exc))
    else:
        for text in (str(spec), repr(spec), spec.masked()):
            _assert_hidden(password, text)
