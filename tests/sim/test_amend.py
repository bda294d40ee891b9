"""Order amend keep priority in the pure exchange (binance-spot.md §7: `x=REPLACED`): what another client's amend of
an order does, for the engine's tests of orders amended outside it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sim import SimError
from tests.sim._helpers import NOW, exchange, order


def _limit(ex: Any, cid: str) -> Any:
    return order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="60000",
                 newClientOrderId=cid).order  # fmt: skip


def test_an_amend_reduces_the_order_in_place_under_a_new_client_id_and_frees_what_it_held() -> None:
    ex = exchange()
    acct = ex.accounts["main"]
    placed = _limit(ex, "a1")
    ex.outbox.clear()
    ex.amend_quantity(placed, acct, Decimal("0.004"), None, NOW + 1)
    assert placed.orig_qty == Decimal("0.004") and placed.client_order_id.startswith("web_")
    assert acct.bal("USDT").locked == Decimal("240")  # 0.004 × 60,000 still held, 360 freed
    [report] = [e for kind, _, e in ex.outbox if kind == "user" and e.get("e") == "executionReport"]
    assert (report["x"], report["X"], report["c"], report["C"], report["q"]) == (
        "REPLACED", "NEW", placed.client_order_id, "a1", "0.00400000")  # fmt: skip
    with pytest.raises(SimError, match="does not exist"):  # the old id names nothing now
        ex.find_order(acct, "BTCUSDT", None, "a1", NOW + 2, cancel=False)
    found = ex.find_order(acct, "BTCUSDT", placed.order_id, None, NOW + 2, cancel=False)
    assert found is placed


def test_an_amend_must_reduce_stay_on_the_lot_grid_and_not_take_another_open_orders_id() -> None:
    ex = exchange()
    acct = ex.accounts["main"]
    placed, other = _limit(ex, "a1"), _limit(ex, "b1")
    for quantity, code in [("0.01", -2038), ("0.02", -2038), ("0.000015", -1013)]:
        with pytest.raises(SimError) as refused:
            ex.amend_quantity(placed, acct, Decimal(quantity), None, NOW)
        assert refused.value.code == code, quantity
    with pytest.raises(SimError, match="Duplicate order sent"):
        ex.amend_quantity(placed, acct, Decimal("0.005"), "b1", NOW)
    ex.amend_quantity(placed, acct, Decimal("0.005"), "a1", NOW)  # keeping its own id
    assert placed.client_order_id == "a1" and other.client_order_id == "b1"
