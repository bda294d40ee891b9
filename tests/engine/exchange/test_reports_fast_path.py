"""The execution-report fast path gives exactly what the checked path gives, and defers on anything irregular."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from engine.exchange import BadFrame, parse_user_data
from engine.exchange._reports import _execution_report, _execution_report_fast, _Fields

BASE: dict[str, Any] = {
    "e": "executionReport",
    "E": 1767225600123,
    "s": "BTCUSDT",
    "c": "bx-abc-p",
    "S": "BUY",
    "o": "LIMIT",
    "f": "GTC",
    "q": "0.01000000",
    "p": "65000.00000000",
    "P": "0.00000000",
    "F": "0.00000000",
    "g": -1,
    "C": "",
    "x": "TRADE",
    "X": "PARTIALLY_FILLED",
    "r": "NONE",
    "i": 4293153,
    "l": "0.00400000",
    "z": "0.00400000",
    "L": "65000.00000000",
    "n": "0.00000400",
    "N": "BTC",
    "T": 1767225600120,
    "t": 56789012,
    "I": 8641990,
    "w": True,
    "m": True,
    "M": True,
    "O": 1767225590001,
    "Z": "260.00000000",
    "Y": "260.00000000",
    "Q": "0.00000000",
    "W": 1767225590001,
    "V": "EXPIRE_MAKER",
}
VARIANTS = [
    {},
    {"x": "NEW", "X": "NEW", "t": -1, "l": "0", "z": "0", "n": "0", "N": None, "L": "0", "Y": "0", "Z": "0"},
    {"x": "CANCELED", "X": "CANCELED", "c": "cancel-1", "C": "bx-abc-p", "t": -1, "N": None},
    {"x": "EXPIRED", "X": "EXPIRED", "eR": "UNFILLED_IOC_QUANTITY_EXPIRED", "S": "SELL", "m": False, "w": False},
]


@pytest.mark.parametrize("patch", VARIANTS)
def test_fast_path_equals_checked_path(patch: dict[str, Any]) -> None:
    event = {**BASE, **patch}
    fast = _execution_report_fast(event, 3)
    assert fast is not None
    assert fast == _execution_report(_Fields(event, b""), 3)


@pytest.mark.parametrize(
    "patch",
    [{"q": 0.01}, {"m": 1}, {"E": True}, {"z": "-1"}, {"p": "NaN"}, {"S": "HOLD"}, {"C": 5}, {"l": "1e40"}],
)
def test_irregular_reports_take_the_checked_path_and_fail_clearly(patch: dict[str, Any]) -> None:
    event = {**BASE, **patch}
    assert _execution_report_fast(event, None) is None
    with pytest.raises(BadFrame):
        parse_user_data(orjson.dumps({"subscriptionId": 0, "event": event}))
