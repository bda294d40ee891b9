"""A request whose orders executed more than it asked: recorded as executed and alerted, never a crashed actor."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from engine.pair import Alert
from tests.pair._book_helpers import Harness, order_json, request
from tests.pair.test_amended_orders import _report


def test_an_overfilled_request_is_summed_up_with_what_executed_and_alerted() -> None:
    h = Harness(limit_timeout_ms=600_000)
    h.place(request())  # 0.01
    create = h.sent[-1]
    answer = order_json(create, "NEW")
    h.answer(answer)
    [leg] = h.book.open_legs()
    leg.state = replace(leg.state, amount=Decimal("0.02"))  # as a 29-digit amount floored up by an older engine did
    fill = _report(leg.cid, "", "TRADE", "FILLED", int(answer["orderId"]), q="0.02", z="0.015", last="0.015", t=90)
    commands = h.book.on_report(fill, h.now)
    h.run(commands)
    [trade] = h.trades()
    assert (trade.filled, trade.remainder) == (Decimal("0.015"), Decimal(0))
    anomalies = [c for c in commands if isinstance(c, Alert) and c.key == "anomaly"]
    assert anomalies and "more than the 0.01 requested" in anomalies[0].message, commands
