"""URL rules shared by configuration validation and `db`: the PostgreSQL parameter allow-list and masking.

Kept free of pydantic and of the database drivers, and outside the `engine.config` package (whose import loads
pydantic-settings), so that both `engine.config` (validating a configuration) and `db._url` (connecting) use
the same rules and `import db` stays light for the CLI.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = [
    "POSTGRES_URL_PARAMS",
    "REDACTED",
    "mask_query_password",
    "mask_url_password",
    "mask_webhook_url",
    "query_passwords",
    "unsupported_params",
]

REDACTED = "REDACTED"

# The query parameters a postgresql:// URL may carry; `db.parse_url` refuses any other when connecting, and
# configuration validation refuses the same ones up front. Not `password`: a secret in a query string is shown
# wherever the URL is (the user part and `database.password` are masked everywhere instead).
POSTGRES_URL_PARAMS = frozenset({"connect_timeout", "application_name", "sslmode", "options", "keepalives_idle"})

# `password=` (any case) as a query parameter, up to the next `&`, `#` or whitespace.
_QUERY_PASSWORD_RE = re.compile(r"([?&;]password=)[^&#\s]*", re.IGNORECASE)
# As `db._url`'s (kept apart: this module imports nothing heavy): everything from ``scheme://user:`` to the URL's
# last ``@``, a password with a space, ``@`` or ``/`` in it included; the URL runs to its line's end or the next URL.
_USERINFO_RE = re.compile(r"(://[^:/@\s]*):(?:(?!\s+[A-Za-z][A-Za-z0-9+.-]*://)[^\r\n])*@")


def mask_query_password(text: str, mask: str = "***") -> str:
    """`text` with the value of every ``password=`` query parameter replaced by `mask`."""
    return _QUERY_PASSWORD_RE.sub(lambda m: m.group(1) + mask, text)


def _query_items(url: str) -> list[tuple[str, str] | None]:
    # Each `&`-separated parameter as (decoded name, raw value), None for one without `=`: how parse_qsl (and so
    # `db.parse_url`) reads them, so `%70assword=` counts as `password` here too.
    try:
        query = urlsplit(url).query
    except ValueError:
        return []
    items: list[tuple[str, str] | None] = []
    for part in query.split("&"):
        if part:
            name, eq, value = part.partition("=")
            items.append((unquote_plus(name), value) if eq else None)
    return items


def query_passwords(url: str) -> list[str]:
    """The values of the ``password`` query parameters of `url`, as written and decoded (for log redaction)."""
    raw = [item[1] for item in _query_items(url) if item is not None and item[0].lower() == "password"]
    return [v for value in raw for v in (value, unquote_plus(value)) if v]


def unsupported_params(url: str) -> tuple[list[str], int]:
    """The query parameter names of `url` outside `POSTGRES_URL_PARAMS`, and how many parameters have no ``=``.

    A parameter without ``=`` is counted, never named: it may be a password pasted in the wrong place.
    """
    items = _query_items(url)
    names = {item[0] for item in items if item is not None}
    return sorted(names - POSTGRES_URL_PARAMS), sum(1 for item in items if item is None)


def mask_url_password(url: str) -> str:
    """Return `url` with any password (in the user part or a ``password=`` parameter) replaced by ``REDACTED``."""
    try:
        parts = urlsplit(url)
        password = parts.password
        port = parts.port
    except ValueError:
        # Unreadable: mask everything between scheme:// and the last '@', like `db.mask_url`.
        return mask_query_password(_USERINFO_RE.sub(rf"\1:{REDACTED}@", url), REDACTED)
    query = mask_query_password("?" + parts.query, REDACTED)[1:] if parts.query else ""
    if password is None and query == parts.query:
        return url  # nothing to mask: as configured (rebuilt, `sqlite:///data/x` lost its empty host's `//`)
    netloc = parts.netloc
    if password is not None:
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{parts.username or ''}:{REDACTED}@{host}" + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_webhook_url(url: str) -> str:
    """Only the scheme and host of a webhook URL: Discord and Slack carry the secret in the path."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if not (parts.path.strip("/") or parts.query or parts.fragment):
        return url
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/{REDACTED}"
