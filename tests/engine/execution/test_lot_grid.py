"""The lot grid and exact rounding (found by a review of the money path).

Binance's LOT_SIZE grid starts at minQty: `(quantity - minQty) % stepSize == 0`. Floored from 0, a minQty off the
step's multiples gave quantities the engine's own check refused (and a fallback remainder declared dust). And the
lot-step floor ran in Decimal's 28-digit context: a 29-digit amount rounded UP, more than asked was bought, and the
trade's negative remainder crashed the pair at every start after.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.domain import Side
from engine.execution import SymbolRules
from tests.engine.execution.conftest_data import request

D = Decimal

_ZERO = D(0)
_steps = st.sampled_from([D(1), D("0.1"), D("0.001"), D("0.00000001"), D(5)])


def _rules(step: Decimal, min_qty: Decimal, min_notional: Decimal = _ZERO) -> SymbolRules:
    return SymbolRules(symbol="XUSDT", base_asset="X", quote_asset="USDT", step_size=step, min_qty=min_qty,
                       min_notional=min_notional)  # fmt: skip


@given(_steps, st.decimals(min_value=D(0), max_value=D(10), places=8), st.decimals(min_value=D(0), max_value=D(1000),
       places=8))  # fmt: skip
def test_a_floored_quantity_is_on_the_exchanges_grid_and_the_largest_such(step: Decimal, min_qty: Decimal,
                                                                           qty: Decimal) -> None:  # fmt: skip
    rules = _rules(step, min_qty)
    out = rules.floor_qty(qty)
    assert out <= qty and qty - out < step
    if qty >= min_qty and out > 0:  # (nothing is never an order)
        assert rules.check(side=Side.BUY, quantity=out, price=None) is None, (step, min_qty, qty, out)


def test_a_min_qty_off_the_steps_multiples_floors_onto_its_grid() -> None:
    rules = _rules(D(1), D("0.5"), min_notional=D(220))
    assert rules.floor_qty(D("2.7")) == D("2.5")
    assert rules.min_tradable(D(100)) == D("2.5")  # 2.2 needed: the grid's next point, not 3 (off the grid)
    assert rules.check(side=Side.BUY, quantity=rules.min_tradable(D(100)), price=D(100)) is None


@given(st.integers(min_value=1, max_value=10**20 - 1), st.integers(min_value=0, max_value=10**20 - 1))
@example(123456789, 10**20 - 1)  # SHIB-sized: 123456789.99999999999999999999 was floored to 123456790
def test_the_floor_is_exact_however_many_digits(whole: int, fraction: int) -> None:
    qty = D(f"{whole}.{fraction:020d}")
    for step in (D(1), D("0.00000001"), D(3)):
        out = _rules(step, D(0)).floor_qty(qty)
        assert out <= qty and qty - out < step, (qty, step, out)


def test_a_requested_amount_beyond_28_significant_digits_is_refused_clearly() -> None:
    with pytest.raises(ValidationError, match="at most 28 significant digits"):
        request(amount="123456789.99999999999999999999")  # 29 digits: it was floored to 123456790
    assert request(amount="123456789.9999999999999999999").amount  # 28: taken
    assert request(amount="1.00000000000000000000").amount == 1  # zeros are not significant
    with pytest.raises(ValidationError, match="significant digits"):
        request(price="5000000000.00000000000000000001")  # 30 digits
