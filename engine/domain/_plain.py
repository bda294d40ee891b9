"""Decimals as people read them: ``0.01`` rather than ``0.01000``, ``0`` rather than ``0E-8``, ``35.02`` rather
than ``35.0200000000000000``. The exchange's and the database's scales (8 or 18 places) are storage detail; the
value is the same, so the text is too — exact, never rounded, never in exponent notation.

Pure (no I/O): the control API's JSON views and the CLI's tables use these, and so do the engine's own
messages (refusals, trade notes, events), which must not show a scale either.
"""

from __future__ import annotations

import contextlib
from decimal import ROUND_DOWN, Decimal, InvalidOperation

__all__ = ["display_decimal", "plain_decimal"]


def plain_decimal(value: Decimal) -> str:
    """`value` in positional notation without trailing fractional zeros (exact: formatted, not rounded)."""
    if not value.is_finite():
        return str(value)
    text = format(value, "f")  # every digit it has, no exponent: 0E-8 -> 0.00000000, 1E+3 -> 1000
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def display_decimal(value: Decimal, places: int) -> str:
    """A computed value (a valuation, a ratio: 2.307692307692307692307692307) for a message: cut to `places`
    decimal places toward zero, then `plain_decimal`. Toward zero, so that a value below a bound of no more
    places never reads as reaching it ("0.0000999999 below 0.0001" is not shown as "0.0001 below 0.0001").
    Only the text is rounded: comparisons keep using the exact value."""
    if not value.is_finite():
        return str(value)
    # more digits than the context carries: shown exact rather than not at all
    with contextlib.suppress(InvalidOperation):
        value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
    return plain_decimal(value)
