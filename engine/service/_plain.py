"""Decimals as people read them: ``0.01`` rather than ``0.01000``, ``0`` rather than ``0E-8``, ``35.02`` rather
than ``35.0200000000000000``. The exchange's and the database's scales (8 or 18 places) are storage detail; the
value is the same, so the text is too — exact, never rounded, never in exponent notation.

The control API's JSON views (`_schemas`) and the CLI's tables use these.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

__all__ = ["jsonable", "plain_decimal", "plain_text"]


def plain_decimal(value: Decimal) -> str:
    """`value` in positional notation without trailing fractional zeros (exact: formatted, not rounded)."""
    if not value.is_finite():
        return str(value)
    text = format(value, "f")  # every digit it has, no exponent: 0E-8 -> 0.00000000, 1E+3 -> 1000
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def plain_text(value: object) -> object:
    """A decimal string (as the exchange sends balances) made plain; anything else, or a non-number, as it is."""
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, str):
        try:
            return plain_decimal(Decimal(value))
        except ArithmeticError:
            return value
    return value


def jsonable(model: BaseModel) -> dict[str, Any]:
    """`model.model_dump(mode="json")`, with every Decimal as `plain_decimal` text."""
    out = to_jsonable_python(_plain(model.model_dump()))
    assert isinstance(out, dict)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
