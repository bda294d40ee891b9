"""The ``[database]`` section: where orders, fills and errors are stored, and the password kept out of sight."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from engine._db_urls import POSTGRES_URL_PARAMS, mask_url_password, query_passwords, unsupported_params
from engine.config._section import Section

__all__ = ["DatabaseConfig"]


class DatabaseConfig(Section):
    """Where orders, fills and errors are stored.

    A PostgreSQL password goes either in `url` or in `password` (a secret, typically from
    ``FREQTRADE__DATABASE__PASSWORD``), never both: with two, which one is right cannot be guessed.
    Connect with `connection_url()`, which merges `password` into the URL. `repr()` masks the URL's password.
    """

    # repr=False: `__repr_args__` shows it masked instead (a repr reaches tracebacks and debug logs).
    url: str = Field(default="sqlite:///data/engine.sqlite3", repr=False)
    password: SecretStr | None = None
    batch_size: int = Field(default=500, ge=1, le=100_000)
    batch_interval_ms: int = Field(default=20, ge=1, le=60_000)
    buffer_max_rows: int = Field(default=100_000, ge=100, le=10_000_000)
    spool_dir: Path = Path("data/spool")
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "url", mask_url_password(self.url)
        yield from super().__repr_args__()

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme == "sqlite":
            if not v.startswith("sqlite:///") or len(v) <= len("sqlite:///"):
                raise ValueError("a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path")
        elif parts.scheme in ("postgresql", "postgres"):
            if not parts.hostname or not parts.path.strip("/"):
                raise ValueError("a PostgreSQL URL is postgresql://user[:password]@host[:port]/database")
            if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
                # urlsplit cut the password at an unencoded '/', '?' or '#': its tail would be read as the host,
                # and show-config (which masks urlsplit's password) would print it.
                raise ValueError(
                    "'@' after the host: percent-encode '/', '?', '#' and '@' in the user and password "
                    "(%2F, %3F, %23, %40)"
                )
            try:
                # urlsplit checks the port only when asked; connecting asks (`db.parse_url`), so ask here too.
                # After the '@' check: with the host part read right, the port holds no part of a password.
                parts.port  # noqa: B018 - read for its ValueError
            except ValueError:
                raise ValueError(
                    "the port must be a number from 0 to 65535: postgresql://user[:password]@host[:port]/database"
                ) from None
            _check_params(v)
        else:
            raise ValueError("the URL scheme must be sqlite:/// or postgresql://")
        return v

    @model_validator(mode="after")
    def _one_password(self) -> DatabaseConfig:
        # The rules `db.with_password` enforces when connecting, checked here so that check-config reports them.
        if self.password is None or not self.password.get_secret_value():
            return self
        parts = urlsplit(self.url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("database.password: SQLite takes no password; unset database.password")
        userinfo = parts.netloc.rpartition("@")[0]
        if not userinfo.split(":", 1)[0]:
            raise ValueError("database.url: a password needs a user: postgresql://user@host[:port]/database")
        if ":" in userinfo:
            raise ValueError(
                "database.password: the URL carries a password too; keep only one (remove ':password' from "
                "database.url or unset database.password)"
            )
        return self

    @property
    def url_password(self) -> str | None:
        """A password embedded in the URL, if any (kept out of logs and output)."""
        return urlsplit(self.url).password

    def url_secrets(self) -> list[str]:
        """Every form of a password the URL holds (user part or query), as written and decoded, for redaction."""
        values = query_passwords(self.url)
        if self.url_password:
            # Both forms: the URL holds it percent-encoded, the driver (and its errors) see it decoded.
            values += [self.url_password, unquote(self.url_password)]
        return [v for v in values if v]

    def connection_url(self) -> str:
        """The URL to connect with: `url` carrying `password` when one is set (see `db.with_password`).

        Every place that connects to the configured database (engine, daemon, ``orders``/``trades``) uses this, so
        `password` reaches each of them. The result masks the password in its `repr()`.
        """
        # Imported here: the db package pulls in peewee and psycopg2, which validating a configuration never needs.
        from db._url import with_password

        return with_password(self.url, self.password.get_secret_value() if self.password else None)


def _check_params(url: str) -> None:
    # The allow-list `db.parse_url` applies when connecting: refused here, check-config lists it with the rest.
    # Values are never quoted (a password may be among them), and a parameter without '=' is not even named.
    unknown, bare = unsupported_params(url)
    if "password" in unknown:
        raise ValueError(
            "a password is not accepted as a URL parameter (?password=…): put it in database.password "
            "(FREQTRADE__DATABASE__PASSWORD or its _FILE form) or in the user part (postgresql://user:password@host/db)"
        )
    if unknown or bare:
        what = [f"unsupported URL parameters {unknown}"] if unknown else []
        what += [f"{bare} URL parameter(s) without '=' (not shown)"] if bare else []
        raise ValueError(f"{' and '.join(what)}; supported: {', '.join(sorted(POSTGRES_URL_PARAMS))}")
