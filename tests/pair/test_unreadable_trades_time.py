"""A myTrades answer with a time out of range is refused whole: none of its rows is applied (review)."""

from __future__ import annotations

from engine.api import EventKind
from engine.domain import Fill
from engine.gateway import Op
from tests.pair._book_helpers import T0, Harness, order_json, request


def _row(oid: int, tid: int, time: int) -> dict:
    return {
        "symbol": "BTCUSDT",
        "id": tid,
        "orderId": oid,
        "orderListId": -1,
        "price": "60000",
        "qty": "0.005",
        "quoteQty": "300",
        "commission": "0",
        "commissionAsset": "BNB",
        "time": time,
        "isBuyer": True,
        "isMaker": False,
        "isBestMatch": True,
    }


def test_a_mytrades_answer_with_an_out_of_range_time_is_not_half_applied() -> None:
    h = Harness()
    h.place(request("0.01", None))
    create = h.sent[-1]
    data = order_json(create, "FILLED", executed="0.01")
    h.answer(data)
    assert h.sent[-1].op is Op.MY_TRADES
    oid = data["orderId"]
    h.answer([_row(oid, 1, T0), _row(oid, 2, 10**15)])  # second row: year ~33658
    errors = [e.message for e in h.events if e.kind is EventKind.ERROR]
    fills = [s for s in h.stored if isinstance(s, Fill)]
    assert not (errors and fills), f"half applied: fills stored {len(fills)}, errors {errors}"
