"""Parsing and validation of Binance request parameters (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote_plus

from sim._errors import SimError, bad_param

__all__ = ["opt_dec", "opt_int", "parse_form", "req", "req_dec"]

_DEC_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
CLIENT_ID_RE = re.compile(r"^[a-zA-Z0-9\-_.]{1,36}$")


def illegal(name: str) -> SimError:
    """-1100 for a value with illegal characters."""
    return SimError(
        400,
        -1100,
        f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
    )


def not_required(name: str) -> SimError:
    """-1106 for a parameter sent when not required."""
    return SimError(400, -1106, f"Parameter '{name}' sent when not required.")


def req(params: Mapping[str, str], name: str) -> str:
    """A mandatory string parameter (-1102 if missing or empty)."""
    value = params.get(name)
    if not value:
        raise bad_param(name)
    return value


def opt_dec(params: Mapping[str, str], name: str) -> Decimal | None:
    """An optional decimal parameter (-1100 on a malformed value)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if not _DEC_RE.match(value):
        raise illegal(name)
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # the regex should make this unreachable
        raise illegal(name) from exc


def req_dec(params: Mapping[str, str], name: str) -> Decimal:
    """A mandatory decimal parameter."""
    value = opt_dec(params, name)
    if value is None:
        raise bad_param(name)
    return value


def opt_int(params: Mapping[str, str], name: str) -> int | None:
    """An optional integer parameter (-1100 if not an integer)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise SimError(
            400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        ) from exc


def parse_form(raw: str, into: dict[str, str]) -> None:
    """Parse ``a=1&b=2`` into ``into`` (later keys win); decodes only components that need it.

    A fast path for the common case: Binance parameters rarely contain escapes, and ``parse_qsl``
    costs more than the rest of an order request.
    """
    for part in raw.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if "%" in part or "+" in part:
            key = unquote_plus(key)
            value = unquote_plus(value)
        into[key] = value
