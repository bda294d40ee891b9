"""The lot grid and exact rounding (found by a review of the money path).

Binance's LOT_SIZE grid starts at minQty: `(quantity - minQty) % stepSize == 0`. Floored from 0, a minQty off the
step's multiples gave quantities the engine's own check refused (and a fallback remainder declared dust). And the
lot-step floor ran in Decimal's 28-digit context: a 29-digit amount rounded UP, more than asked was bought, and the
trade's negative remainder crashed the pair at every start after.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import example, given
from hypothesis import strategies as st

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


def test_a_new_amount_or_price_beyond_28_significant_digits_is_refused_clearly() -> None:
    from engine.api import Refusal, RefusalReason
    from tests.engine.api.test_place_input import _Facade

    for arguments in ({"amount": "123456789.99999999999999999999"},  # 29 digits: it was floored to 123456790
                      {"price": "5000000000.00000000000000000001"}):  # fmt: skip
        facade = _Facade()
        placement = facade.place_order(**{"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "price": "59000",
                                          **arguments})  # fmt: skip
        refusal = placement.result(0)
        assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.INVALID_REQUEST
        assert "at most 28 significant digits" in refusal.message and next(iter(arguments)) in refusal.message
    facade = _Facade()
    for amount in ("123456789.9999999999999999999", "1.00000000000000000000"):  # 28; zeros are not significant
        assert not facade.place_order("BTC/USDT", "buy", amount, "59000").done()
    # Stored before the rule, a request still loads (a restart must resume it) and its floor is exact.
    assert request(amount="123456789.99999999999999999999").amount
    assert _rules(D(1), D(0)).floor_qty(D("123456789.99999999999999999999")) == D(123456789)


def test_a_request_that_filled_more_than_it_asked_is_recorded_not_a_crash() -> None:
    # Diff review: the Trade validator refused filled > requested, so the summary could not be built and the pair
    # actor crashed at every start (the 29-digit request above, stored by an engine before the exact floor).
    from types import SimpleNamespace

    from engine.domain import TradeStatus
    from engine.pair._legs import trade_of
    from tests.db import _records as rec

    req = rec.request("r1").request  # buy 1 BTC/USDT at 100
    execution = SimpleNamespace(request=req, story=[], created_ms=1_700_000_000_000)
    result = SimpleNamespace(status=TradeStatus.FILLED, filled=D("1.00000001"), detail="filled", dust=False,
                             reason=SimpleNamespace(value="filled"))  # fmt: skip
    leg = SimpleNamespace(state=SimpleNamespace(filled=D("1.00000001"), quote_filled=D("100.000001"), fees=()))
    trade = trade_of(execution, result, [leg], 1_700_000_001_000, lambda q: q)  # type: ignore[arg-type]
    assert (trade.filled, trade.remainder) == (D("1.00000001"), D(0))
