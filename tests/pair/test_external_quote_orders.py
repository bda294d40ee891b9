"""An outside market order placed for a quote amount ("buy 100 USDT of BTC" in the UI), pure.

It is reported NEW with quantity 0: its quantity is what the quote amount buys. It ends when the exchange says so
(FILLED, or EXPIRED with the quote amount partly spent), never because its fills reached a quantity known here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from engine.domain import ClientOrderId, Fill, Order, OrderRole, OrderStatus
from engine.exchange import ExecutionReport, parse_user_data
from engine.pair import Alert, Command, Persist
from engine.pair._legs import order_of
from tests.pair._book_helpers import T0, Harness

CID = ClientOrderId("web_quote_1")
PRICE = Decimal(60000)


def _report(*, x: str, status: str, last: str = "0", cum: str = "0", trade_id: int = -1) -> ExecutionReport:
    frame = {
        "e": "executionReport", "E": T0 + 50, "s": "BTCUSDT", "c": CID, "S": "BUY", "o": "MARKET", "f": "GTC",
        "q": "0", "p": "0", "P": "0", "F": "0", "g": -1, "C": "", "x": x, "X": status, "r": "NONE",
        "i": 43, "l": last, "z": cum, "L": str(PRICE) if x == "TRADE" else "0", "n": "0", "N": None,
        "T": T0 + 50, "t": trade_id if x == "TRADE" else -1, "I": 1, "w": False, "m": False, "M": True, "O": T0,
        "Z": str(Decimal(cum) * PRICE), "Y": str(Decimal(last) * PRICE), "Q": "1000",
    }  # fmt: skip
    report = parse_user_data(orjson.dumps(frame))
    assert isinstance(report, ExecutionReport)
    return report


def _of(commands: list[Command], kind: type) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def _last_order(h: Harness) -> Order:
    return order_of(h.book._legs[CID])


def _step(h: Harness, report: ExecutionReport, fills: list[Fill]) -> Order:
    commands = h.book.on_report(report, h.now)
    assert not [a for a in _of(commands, Alert) if a.key != "external_order"], commands
    fills += [c.item for c in _of(commands, Persist) if isinstance(c.item, Fill)]
    return _last_order(h)


def test_an_outside_quote_market_order_is_filled_only_when_the_exchange_says_filled() -> None:
    h = Harness()
    fills: list[Fill] = []
    order = _step(h, _report(x="NEW", status="NEW"), fills)
    assert order.role is OrderRole.EXTERNAL and order.status is OrderStatus.OPEN and order.filled == 0

    order = _step(h, _report(x="TRADE", status="PARTIALLY_FILLED", last="0.004", cum="0.004", trade_id=10), fills)
    # the first trade does not complete it: the quote amount is not spent yet
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.filled == Decimal("0.004")

    order = _step(h, _report(x="TRADE", status="PARTIALLY_FILLED", last="0.005", cum="0.009", trade_id=11), fills)
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.filled == Decimal("0.009")

    order = _step(h, _report(x="TRADE", status="FILLED", last="0.0076", cum="0.0166", trade_id=12), fills)
    assert order.status is OrderStatus.FILLED
    assert order.filled == order.amount == Decimal("0.0166")
    assert order.quote_filled == Decimal("0.0166") * PRICE
    assert [f.trade_id for f in fills] == [10, 11, 12]  # each fill recorded once

    # the same reports again (a replay, a reconnect) change nothing and record nothing
    again = _step(h, _report(x="TRADE", status="FILLED", last="0.0076", cum="0.0166", trade_id=12), fills)
    assert again.status is OrderStatus.FILLED and [f.trade_id for f in fills] == [10, 11, 12]


def test_an_outside_quote_market_order_can_end_expired_after_one_partial_fill() -> None:
    # The book ran out before the quote amount was spent: the exchange expires the rest.
    h = Harness()
    fills: list[Fill] = []
    _step(h, _report(x="NEW", status="NEW"), fills)
    order = _step(h, _report(x="TRADE", status="PARTIALLY_FILLED", last="0.004", cum="0.004", trade_id=10), fills)
    assert order.status is OrderStatus.PARTIALLY_FILLED
    order = _step(h, _report(x="EXPIRED", status="EXPIRED", cum="0.004"), fills)
    assert order.status is OrderStatus.EXPIRED
    assert order.filled == order.amount == Decimal("0.004")
    assert [f.trade_id for f in fills] == [10]


def test_a_trade_report_arriving_after_the_expiry_leaves_the_quote_order_expired() -> None:
    # Reports may be reordered: the expiry (z counts the trade) first, then the trade itself.
    h = Harness()
    fills: list[Fill] = []
    _step(h, _report(x="NEW", status="NEW"), fills)
    order = _step(h, _report(x="EXPIRED", status="EXPIRED", cum="0.004"), fills)
    assert order.status is OrderStatus.EXPIRED
    order = _step(h, _report(x="TRADE", status="PARTIALLY_FILLED", last="0.004", cum="0.004", trade_id=10), fills)
    assert order.status is OrderStatus.EXPIRED and order.filled == Decimal("0.004")
    assert [f.trade_id for f in fills] == [10]
