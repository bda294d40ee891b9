"""Validated value types: exact decimals and UTC timestamps.

Money must never pass through a binary float: a float input is refused outright rather than converted,
because by the time it is a float the damage (0.1 → 0.1000000000000000055…) is done.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from engine.domain._enums import Pair, Symbol

_PAIR_RE = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")

KNOWN_QUOTES: tuple[str, ...] = (
    "USDT",
    "USDC",
    "FDUSD",
    "TUSD",
    "BUSD",
    "DAI",
    "BTC",
    "ETH",
    "BNB",
    "EUR",
    "TRY",
    "BRL",
    "JPY",
    "USD",
)
"""Quote assets tried (longest match first) when splitting a Binance symbol without exchange info."""


def _refuse_float(value: Any) -> Any:
    if isinstance(value, float):
        # Not only money (indicator values too): every decimal field refuses a float, which has already lost digits.
        raise ValueError(f"must be a Decimal, int or str, not float ({value!r}: a float has already lost precision)")
    return value


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError(f"decimal must be finite, got {value}")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError(f"must be > 0, got {value}")
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")
    return value


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _check_pair(value: str) -> str:
    if not _PAIR_RE.fullmatch(value):  # `match` with `$` let a trailing newline through
        raise ValueError(f"pair must look like 'BASE/QUOTE' in upper case (e.g. 'BTC/USDT'), got {value!r}")
    return value


def _sized(value: Decimal) -> Decimal:
    # A caller's quantity or price: as many digits as any venue quotes, and no more. Unbounded, a finite
    # value like 1E+999999 overflowed the arithmetic of the checks that follow (and crashed the pair actor).
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite (checked before)
    whole = len(digits) + exponent
    if whole > MAX_WHOLE_DIGITS or -exponent > MAX_FRACTION_DIGITS:
        raise ValueError(
            f"at most {MAX_WHOLE_DIGITS} digits before the point and {MAX_FRACTION_DIGITS} after it, got {value}"
        )
    return value


def check_significant(name: str, value: Decimal) -> Decimal:
    """`value`, if it has at most `MAX_SIGNIFICANT_DIGITS` significant digits (a caller's new amount or price).

    Checked at intake only (`Engine.place_order`): a request stored before the rule must still load, and an
    indicator is only stored, never computed with.

    Raises:
        ValueError: more significant digits than the arithmetic keeps.
    """
    # Decimal's context keeps 28 significant digits: a 29th rounded the lot-step floor UP (more than asked was
    # bought, and the trade that could not be stored crashed the pair at every start after).
    significant = "".join(map(str, value.as_tuple().digits)).strip("0")
    if len(significant) > MAX_SIGNIFICANT_DIGITS:
        raise ValueError(
            f"{name}: at most {MAX_SIGNIFICANT_DIGITS} significant digits, got {len(significant)}: {value}"
        )
    return value


MAX_WHOLE_DIGITS = 20
"""Digits before the decimal point a requested amount or price may have (as the control API's schema says)."""
MAX_FRACTION_DIGITS = 20
"""Digits after the decimal point a requested amount or price may have."""
MAX_SIGNIFICANT_DIGITS = 28
"""Significant digits a requested amount or price may have: what `decimal`'s default context computes exactly."""
MAX_LIMIT_TIMEOUT_S = Decimal(86400)
"""The longest a request's limit may wait before its fallback (as `execution.limit_timeout_s`)."""


def _timeout(value: Decimal) -> Decimal:
    if value > MAX_LIMIT_TIMEOUT_S:
        raise ValueError(f"at most {MAX_LIMIT_TIMEOUT_S} s, got {value}")
    return value


Money = Annotated[Decimal, BeforeValidator(_refuse_float), AfterValidator(_finite)]
"""Any finite Decimal (may be negative)."""
PositiveDecimal = Annotated[Decimal, BeforeValidator(_refuse_float), AfterValidator(_finite), AfterValidator(_positive)]
"""A finite Decimal > 0."""
NonNegativeDecimal = Annotated[
    Decimal, BeforeValidator(_refuse_float), AfterValidator(_finite), AfterValidator(_non_negative)
]
"""A finite Decimal >= 0."""
_POSITIVE = (BeforeValidator(_refuse_float), AfterValidator(_finite), AfterValidator(_positive))
RequestedDecimal = Annotated[Decimal, *_POSITIVE, AfterValidator(_sized)]
"""A caller's amount or price: > 0, with at most `MAX_WHOLE_DIGITS` + `MAX_FRACTION_DIGITS` digits (a new request's
also at most `MAX_SIGNIFICANT_DIGITS` significant: `check_significant`)."""
IndicatorValue = Annotated[Decimal, BeforeValidator(_refuse_float), AfterValidator(_finite), AfterValidator(_sized)]
"""An indicator value a caller gives (RSI, EMA…): finite, sized as a requested amount (it is stored as a number)."""
TimeoutSeconds = Annotated[Decimal, *_POSITIVE, AfterValidator(_timeout)]
"""A caller's limit timeout in seconds: > 0 and at most `MAX_LIMIT_TIMEOUT_S`."""
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC. Naive datetimes are refused."""
PairField = Annotated[Pair, AfterValidator(_check_pair)]
"""A "BASE/QUOTE" pair, validated."""

_UNSTORABLE_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
"""Control characters (tab, newline and carriage return aside) and lone surrogates: PostgreSQL refuses NUL in
text, and a lone surrogate cannot be encoded as UTF-8 at all (JSON, the spool, the database)."""


def _label(max_length: int) -> Any:
    def check(value: str) -> str:
        if len(value) > max_length:
            raise ValueError(f"at most {max_length} characters, got {len(value)}")
        if _UNSTORABLE_RE.search(value):
            raise ValueError("control characters and lone surrogates are not allowed")
        return value

    return AfterValidator(check)


def storable_text(value: str) -> str:
    """`value` with what no database or UTF-8 encoder takes replaced (NUL and other control characters by
    U+FFFD, lone surrogates too): for text from outside (exchange messages) that must be kept, not refused."""
    return _UNSTORABLE_RE.sub("\ufffd", value)


def _storable(value: Any) -> Any:
    return storable_text(value) if isinstance(value, str) else value


Label16 = Annotated[str, _label(16)]
"""A short caller-given name (a timeframe): at most 16 characters, no control characters."""
Label64 = Annotated[str, _label(64)]
"""A caller-given name (strategy, indicator): at most 64 characters, no control characters."""
Label128 = Annotated[str, _label(128)]
"""A caller-given key (idempotency key): at most 128 characters, no control characters."""
StorableText = Annotated[str, BeforeValidator(_storable)]
"""Text from outside, kept whatever it holds: what cannot be stored is replaced (`storable_text`)."""


def utc_now() -> datetime:
    """The current time as an aware UTC datetime (for callers outside the pure core)."""
    return datetime.now(UTC)


def pair_to_symbol(pair: str) -> Symbol:
    """ "BTC/USDT" → "BTCUSDT".

    Raises:
        ValueError: if `pair` is not "BASE/QUOTE".
    """
    _check_pair(pair)
    base, quote = pair.split("/")
    return Symbol(base + quote)


def symbol_to_pair(symbol: str, quotes: tuple[str, ...] = KNOWN_QUOTES) -> Pair:
    """ "BTCUSDT" → "BTC/USDT", splitting on the longest known quote asset that leaves a non-empty base.

    Pass the exchange's real quote assets as `quotes` when they are known; the default list covers the
    common Binance quotes.

    Raises:
        ValueError: if no quote asset in `quotes` ends the symbol.
    """
    upper = symbol.upper()
    for quote in sorted(quotes, key=len, reverse=True):
        if upper.endswith(quote) and len(upper) > len(quote):
            return Pair(f"{upper[: -len(quote)]}/{quote}")
    raise ValueError(f"cannot split symbol {symbol!r}: no known quote asset among {', '.join(quotes)}")
