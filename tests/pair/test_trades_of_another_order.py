"""A myTrades row of another order is never credited to this one (found by mutation testing)."""

from __future__ import annotations

from typing import Any

from engine.gateway import Op
from tests.pair.test_recover import T0, Harness, order_json, request


def test_a_trades_row_of_another_order_is_not_applied() -> None:  # kills Q1
    h = Harness()
    h.place(request(amount="0.2"))
    create = h.sent[-1]
    h.answer(order_json(create, "PARTIALLY_FILLED", "0.1"))
    trades_req = next(r for r in h.sent if r.op is Op.MY_TRADES)
    order_id = int(trades_req.params["orderId"])

    def row(i: int, oid: int) -> dict[str, Any]:
        return {"symbol": "BTCUSDT", "id": i, "orderId": oid, "price": "60000", "qty": "0.1", "quoteQty": "6000",
                "commission": "0", "commissionAsset": "BNB", "time": T0 + i, "isBuyer": True,
                "isMaker": True}  # fmt: skip

    h.answer([row(1, order_id + 1)], index=h.sent.index(trades_req))  # someone else's trade
    assert h.fills() == []
