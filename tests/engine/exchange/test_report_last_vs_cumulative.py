"""Found by a mutation audit: last (l, Y) and cumulative (z, Z) figures of an execution report are not interchangeable;
with the fixture's l == z and Y == Z (a first fill) a swap in either parser path is invisible."""

from __future__ import annotations

from decimal import Decimal

from engine.exchange._reports import _execution_report, _execution_report_fast, _Fields
from tests.engine.exchange.test_reports_fast_path import BASE

SECOND_FILL = {
    **BASE,
    "l": "0.00300000",
    "z": "0.00700000",
    "L": "65000.00000000",
    "Y": "195.00000000",
    "Z": "455.00000000",
    "t": 56789013,
}


def test_second_partial_fill_maps_last_and_cumulative_figures() -> None:
    for report in (_execution_report_fast(SECOND_FILL, 3), _execution_report(_Fields(SECOND_FILL, b""), 3)):
        assert report is not None
        assert report.last_qty == Decimal("0.003") and report.cum_qty == Decimal("0.007")
        assert report.last_quote == Decimal("195") and report.cum_quote == Decimal("455")
