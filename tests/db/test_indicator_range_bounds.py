"""Indicator range queries on SQLite: the REAL pre-filter is widened past SQLite's rounding, so a row right at a
bound is decided by the exact `dec_cmp` and never dropped by the float guard."""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal, localcontext

import peewee
import pytest
from hypothesis import given
from hypothesis import strategies as st

from db import BatchWriter, TradeRow, connect, find_trades
from tests.db import _records as rec

# SQLite's CAST('97.903429061728211081' AS REAL) is one ulp below the correctly rounded float (Python's), so an
# unwidened `CAST(rsi AS REAL) >= float(low)` dropped the row whose rsi equals `low`.
_REVIEWED = Decimal("97.903429061728211081")


@pytest.fixture
def db(sqlite_url: str) -> Iterator[peewee.Database]:
    database = connect(sqlite_url)
    yield database
    database.close()


def _store(db: peewee.Database, value: Decimal) -> None:
    TradeRow.delete().execute(db)
    BatchWriter(db).write([rec.trade("r-1", indicators={"rsi": value})])


def _found(db: peewee.Database, low: Decimal | None, high: Decimal | None) -> bool:
    return len(find_trades(db, indicators={"rsi": (low, high)})) == 1


def test_the_reviewed_boundary_value_is_found(db: peewee.Database) -> None:
    _store(db, _REVIEWED)
    assert _found(db, _REVIEWED, None)  # rsi >= its own value
    assert _found(db, Decimal("97.9034290617282110809"), None)  # a bound just below it
    assert not _found(db, None, _REVIEWED)  # rsi < its own value: the upper bound is exclusive
    assert _found(db, None, Decimal("97.9034290617282110811"))  # a bound just above it
    assert not _found(db, Decimal("97.9034290617282110811"), None)
    assert _found(db, _REVIEWED, Decimal("97.9034290617282110811"))


@st.composite
def _near_float_midpoints(draw: st.DrawFn) -> Decimal:
    """Decimals of 17-22 significant digits next to the midpoint of two adjacent floats: where a conversion that
    is not correctly rounded (SQLite's) lands on the other float about one time in four."""
    low = draw(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False))
    with localcontext(prec=800):  # exact: a float's decimal expansion has up to 767 significant digits
        midpoint = (Decimal(low) + Decimal(math.nextafter(low, math.inf))) / 2
    with localcontext(prec=draw(st.integers(min_value=17, max_value=22))):
        return +midpoint


def test_a_value_at_either_bound_is_decided_exactly(db: peewee.Database) -> None:
    @given(value=_near_float_midpoints(), digits=st.integers(min_value=19, max_value=30))
    def check(value: Decimal, digits: int) -> None:
        # The smallest step at `digits` significant places: far below one ulp of the float, so the float guard
        # alone cannot tell `value` from its neighbours.
        step = Decimal(1).scaleb(value.adjusted() - digits) if value else Decimal("1e-30")
        with localcontext(prec=60):  # exact: the default 28 digits would round value + step back to value
            above, below = value + step, value - step
        _store(db, value)
        assert _found(db, value, None)
        assert _found(db, below, None)
        assert not _found(db, above, None)
        assert not _found(db, None, value)
        assert _found(db, None, above)
        assert not _found(db, None, below)
        assert _found(db, value, above)

    check()
