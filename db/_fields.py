"""Column types: exact decimals, UTC timestamps and JSON maps, identical in meaning on both backends."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import peewee

_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def decimal_to_text(value: Decimal) -> str:
    """Canonical text of a finite decimal: positional notation, no exponent, scale kept ("0.10")."""
    text = str(value)
    # Fast path (the common case): str() is already positional; NaN/Infinity end in a letter.
    if "E" not in text and text[-1].isdigit():
        return text
    if not value.is_finite():
        raise ValueError(f"cannot store non-finite decimal {value}")
    return format(value, "f")


def utc_to_text(value: datetime) -> str:
    """Fixed-width UTC text ("2026-01-02 03:04:05.000000"), so text order equals time order."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"refusing to store naive datetime {value!r}; use an aware UTC time")
    if offset:
        value = value.astimezone(UTC)
    # isoformat is the fastest formatter here; the first 26 characters drop the "+00:00".
    return value.isoformat(" ", "microseconds")[:26]


class ExactDecimalField(peewee.Field):
    """A decimal that round-trips exactly: NUMERIC on PostgreSQL, canonical TEXT on SQLite.

    Values are sent as canonical text on both backends; PostgreSQL casts the literal to NUMERIC without
    going through a float. Comparisons on SQLite are textual, so the repository compares numerically
    there (see `db._repository`).
    """

    field_type = "EXACTDECIMAL"

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError(f"refusing to store float {value!r} in an exact decimal column")
        return decimal_to_text(value if isinstance(value, Decimal) else Decimal(value))

    def python_value(self, value: Any) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        return Decimal(value)


class UtcDateTimeField(peewee.Field):
    """An aware UTC datetime stored as naive UTC (TIMESTAMP on PostgreSQL, fixed-width TEXT on SQLite)."""

    field_type = "UTCDATETIME"

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return utc_to_text(value)

    def python_value(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return datetime.fromisoformat(value).replace(tzinfo=UTC)  # C parser: strptime is ~10x slower


class JsonMapField(peewee.TextField):
    """A str → str/Decimal mapping as JSON text; decimals are written as strings so they stay exact."""

    def db_value(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value  # already JSON text (e.g. a migration's column default)
        return json_map(value)

    def python_value(self, value: Any) -> dict[str, str] | None:
        if value is None:
            return None
        loaded: dict[str, str] = orjson.loads(value)
        return loaded


def json_map(value: Mapping[str, Any]) -> str:
    """Serialise a mapping with sorted keys; Decimals as canonical text."""
    if not value:
        return "{}"  # most rows: an order before its first fill, a trade without indicators
    return orjson.dumps(
        {k: decimal_to_text(v) if isinstance(v, Decimal) else v for k, v in value.items()},
        option=orjson.OPT_SORT_KEYS,
    ).decode()
