"""The report router (runs on UBWA's thread): reports to their pair actor, then the hand-off pause."""

from __future__ import annotations

from typing import Any

import pytest

import actors._feeds as feeds
from actors._feeds import ReportRouter
from engine.domain import Pair
from tests.pair.test_recover import _report

BTC = Pair("BTC/USDT")


class _Proxy:
    def __init__(self, log: list[Any]) -> None:
        self.on_report = self
        self._log = log

    def defer(self, report: object) -> None:
        self._log.append(("tell", report))


def test_a_report_goes_to_its_pair_then_the_thread_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[Any] = []
    monkeypatch.setattr(feeds.time, "sleep", lambda s: log.append(("sleep", s)))
    router = ReportRouter(
        {BTC: _Proxy(log)}.get, {"BTCUSDT": BTC}, lambda item: log.append(("other", item)), handoff_pause_s=20e-6
    )
    report = _report("bx-a", x="TRADE", status="FILLED", last="0.01", cum="0.01", trade_id=1, order_id=7)
    router(report)
    assert log == [("tell", report), ("sleep", 20e-6)]  # the pause comes after the tell, never before

    log.clear()
    router("account position")  # not an execution report: to `other`, no pause
    unknown = _report("bx-b", x="NEW", status="NEW", last="0", cum="0", trade_id=0, order_id=8)
    ReportRouter({}.get, {"BTCUSDT": BTC}, lambda item: log.append(("other", item)), handoff_pause_s=20e-6)(unknown)
    assert log == [("other", "account position"), ("other", unknown)]


def test_no_pause_when_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[Any] = []
    monkeypatch.setattr(feeds.time, "sleep", lambda s: log.append(("sleep", s)))
    router = ReportRouter({BTC: _Proxy(log)}.get, {"BTCUSDT": BTC}, lambda item: None)
    report = _report("bx-a", x="TRADE", status="FILLED", last="0.01", cum="0.01", trade_id=1, order_id=7)
    router(report)
    assert log == [("tell", report)]
