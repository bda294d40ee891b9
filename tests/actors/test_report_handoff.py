"""An execution report for a pair whose actor is dead is not lost: the router hands it to the root, which holds
it for the restarted actor, or (past the restart budget) applies it to the pair's book, now tracking-only.

A pair actor stopped with `stop()` is the restart window held open (dead, no crash reported yet); the root's
`child_failed` is then asked by hand. Waits are on the event recorder's condition or asks, never sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pykka
import pytest
from loguru import logger

import actors._reconcile as reconcile_module
from actors._feeds import PriceRouter, ReportRouter
from engine.api import Accepted, Engine, EventKind
from engine.clock import ManualClock
from engine.domain import Pair
from engine.exchange import ExecutionReport
from sim import SimConfig, Simulator
from tests.actors._crashes import exhaust_restart_budget
from tests.engine_e2e._stack import Recorder, engine_on
from tests.pair.test_recover import _report

BTC, ETH = Pair("BTC/USDT"), Pair("ETH/USDT")
CONFIG = {
    "stream": {"user_data": False, "market_data": False},
    "exchange": {"pair_whitelist": [BTC, ETH]},
    "execution": {"limit_timeout_s": "600"},
}


class _Pair(pykka.ThreadingActor):
    def on_report(self, report: object) -> None:
        pass

    def on_price(self, bid: Decimal, ask: Decimal) -> None:
        pass


def _dead_proxy() -> Any:
    ref = _Pair.start()
    proxy = ref.proxy()
    ref.stop()
    return proxy


def test_the_router_hands_a_report_for_a_dead_actor_to_the_root() -> None:
    other: list[object] = []
    router = ReportRouter({BTC: _dead_proxy()}.get, {"BTCUSDT": BTC}, other.append)
    report = _report("bx-a", x="TRADE", status="FILLED", last="0.01", cum="0.01", trade_id=1, order_id=7)
    router(report)
    assert other == [report]


def test_a_price_for_a_dead_actor_is_dropped_quietly() -> None:
    router = PriceRouter({BTC: _dead_proxy()}.get, {"BTCUSDT": BTC}, ManualClock(0))
    router("BTCUSDT", Decimal(1), Decimal(2), 0)  # no raise


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(
        seed=11, symbols=["BTCUSDT", "ETHUSDT"], start_prices={"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    )
    with Simulator(config) as simulator:
        yield simulator


def _resting_btc_order(engine: Engine) -> Accepted:
    outcome = engine.place_order(BTC, "buy", "0.01", "59950").result(timeout=20)
    assert isinstance(outcome, Accepted), outcome
    return outcome


def _fill_of(accepted: Accepted, trade_id: int) -> ExecutionReport:
    order = accepted.order
    assert order.exchange_order_id is not None
    return _report(
        order.client_order_id, x="TRADE", status="PARTIALLY_FILLED", last="0.004", cum="0.004",
        trade_id=trade_id, order_id=order.exchange_order_id, qty="0.01", price="59950",
    )  # fmt: skip


def _stream_router(engine: Engine) -> ReportRouter:
    """The router the stream actor would use (the test engine runs without streams)."""
    return ReportRouter(engine._routing.get, {"BTCUSDT": BTC, "ETHUSDT": ETH}, engine._root.proxy().on_unrouted.defer)


def _fills_seen(events: Recorder, cid: str) -> list[Any]:
    return [e for e in events.of(EventKind.FILL) if e.client_order_id == cid]


def test_a_report_held_in_the_restart_window_reaches_the_restarted_actor(sim: Simulator, tmp_path: Path) -> None:
    with engine_on(sim, tmp_path, CONFIG) as (engine, events):
        accepted = _resting_btc_order(engine)
        cid = accepted.order.client_order_id
        engine._routing.get(BTC).actor_ref.stop(timeout=10)  # dead; its crash report has not come yet
        _stream_router(engine)(_fill_of(accepted, trade_id=9001))
        root = engine._root.proxy()
        root.pair_refs().get(timeout=10)  # barrier: the root has the report (held: nobody to give it to)
        assert _fills_seen(events, cid) == []

        root.child_failed(BTC).get(timeout=10)  # restarted: the held report goes to the new actor first
        events.wait(lambda r: len(_fills_seen(r, cid)) == 1, timeout=20, what="the held fill")
        order = engine.get_order(BTC, cid)
        assert order is not None and order.filled == Decimal("0.004")


def test_past_the_budget_a_report_is_stored_through_the_tracking_only_book(sim: Simulator, tmp_path: Path) -> None:
    with engine_on(sim, tmp_path, CONFIG) as (engine, events):
        accepted = _resting_btc_order(engine)
        cid = accepted.order.client_order_id
        exhaust_restart_budget(engine, BTC)

        _stream_router(engine)(_fill_of(accepted, trade_id=9002))
        events.wait(lambda r: len(_fills_seen(r, cid)) == 1, timeout=20, what="the tracked fill")
        store = engine._root.proxy().store().get(timeout=10)
        fills = store.proxy.fills_of(cid).get(timeout=10)
        assert [(f.trade_id, f.quantity) for f in fills] == [(9002, Decimal("0.004"))]
        tracked = engine._root.proxy().tracked_open_orders(BTC).get(timeout=10)
        assert [o.filled for o in tracked] == [Decimal("0.004")]


def test_the_held_reports_are_bounded_and_an_overflow_is_alerted(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile_module, "_HELD_REPORTS", 1)
    alerts: list[str] = []
    sink = logger.add(lambda m: alerts.append(m.record["extra"].get("alert", "")), level="CRITICAL")
    try:
        with engine_on(sim, tmp_path, CONFIG) as (engine, events):
            accepted = _resting_btc_order(engine)
            cid = accepted.order.client_order_id
            engine._routing.get(BTC).actor_ref.stop(timeout=10)
            router = _stream_router(engine)
            router(_fill_of(accepted, trade_id=9001))
            router(_fill_of(accepted, trade_id=9002))  # past the bound: dropped, alerted
            engine._root.proxy().child_failed(BTC).get(timeout=10)
            events.wait(lambda r: len(_fills_seen(r, cid)) == 1, timeout=20, what="the held fill")
            assert [e.fill.trade_id for e in _fills_seen(events, cid) if e.fill is not None] == [9001]
            assert alerts == ["fills_missing"]
    finally:
        logger.remove(sink)
