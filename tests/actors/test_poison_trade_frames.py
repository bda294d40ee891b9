"""A trade report with numbers no fill can have is a bad frame at the parser, not a poison for the pair actor.

A TRADE at price 0 (or of quantity 0) passed the parser, was applied to the book, and then failed the `Fill`
model when its record was built: the pair actor crashed, and its restart failed the same way. The parser
refuses it like any other malformed frame (`BadFrame`: the stream logs and records it, reconciliation finds the
order's real fills); the same numbers on a report that is not a trade stay valid (a NEW report has `L` 0).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from engine.exchange import BadFrame, ExecutionReport, ExecutionType, parse_user_data
from engine.exchange._reports import _execution_report_fast

TRADE: dict[str, Any] = {
    "e": "executionReport", "E": 1767225600123, "s": "BTCUSDT", "c": "bx-abc-p", "S": "BUY", "o": "LIMIT",
    "f": "GTC", "q": "0.01000000", "p": "65000.00000000", "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "",
    "x": "TRADE", "X": "PARTIALLY_FILLED", "r": "NONE", "i": 4293153, "l": "0.00400000", "z": "0.00400000",
    "L": "65000.00000000", "n": "0.00000400", "N": "BTC", "T": 1767225600120, "t": 56789012, "I": 8641990,
    "w": True, "m": True, "M": True, "O": 1767225590001, "Z": "260.00000000", "Y": "260.00000000",
    "Q": "0.00000000", "W": 1767225590001, "V": "EXPIRE_MAKER",
}  # fmt: skip


def _parse(event: dict[str, Any]) -> object:
    return parse_user_data(orjson.dumps({"subscriptionId": 0, "event": event}))


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"L": "0"}, "'L'"),
        ({"L": "0.00000000"}, "'L'"),
        ({"l": "0"}, "'l'"),
        ({"n": "-0.0001"}, "'n'"),
    ],
)
def test_a_trade_with_an_impossible_price_quantity_or_commission_is_a_bad_frame(
    patch: dict[str, Any], field: str
) -> None:
    event = {**TRADE, **patch}
    assert _execution_report_fast(event, 0) is None  # the hot path defers: the checked path says why
    with pytest.raises(BadFrame, match=field):
        _parse(event)


def test_the_same_zeros_on_a_report_that_is_not_a_trade_are_valid() -> None:
    new = {**TRADE, "x": "NEW", "X": "NEW", "t": -1, "l": "0", "z": "0", "L": "0", "n": "0", "Y": "0", "Z": "0"}
    report = _parse(new)
    assert isinstance(report, ExecutionReport) and report.execution_type is ExecutionType.NEW


def test_a_valid_trade_still_takes_the_hot_path() -> None:
    report = _execution_report_fast(TRADE, 0)
    assert report is not None and report.is_trade
    assert report == _parse(TRADE)
