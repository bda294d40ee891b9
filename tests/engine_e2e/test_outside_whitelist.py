"""Orders of a pair taken off the whitelist between two runs: tracked to their end, never traded.

The recovery tests' engines (`start`, `db_url`) on a simulator with two pairs. The first engine trades BTC and
ETH; it stops leaving an ETH order live (as a crash would), and the second starts on the same database with BTC
only. The ETH order is still the engine's: its fills are found and stored, and the
periodic reconciliation follows it to its end, but nothing is sent for ETH any more (no cancel at the limit
timeout, no fallback, no re-send). Time is a manual clock shared across the restart.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from db import fills_of, get_trade
from engine.api import Accepted, EventKind
from engine.clock import ManualClock, SystemClock
from engine.domain import TradeStatus
from sim import Simulator
from tests.engine_e2e._engine_sim_helpers import alerts, sim
from tests.engine_e2e.test_recovery import (
    _advance_until,
    _flush,
    _read,
    _write_intent,
    db_url,
    settle_all,
    start,
)

__all__ = ["alerts", "db_url", "sim", "start"]  # fixtures: the recovery tests' engines, the engine tests' sim

ETH = "ETH/USDT"


def _eth_orders(sim: Simulator) -> list[dict[str, Any]]:
    return [o for o in sim.control.ledger()["orders"] if o["symbol"] == "ETHUSDT"]


def test_a_live_order_of_a_pair_taken_off_the_whitelist_is_followed_to_its_end(
    start: Any, sim: Simulator, db_url: str
) -> None:
    clock = ManualClock(SystemClock().now_ms())
    first, _ = start(clock, ["BTC/USDT", ETH])
    accepted = first.place_order(ETH, "buy", "0.1", "2900", idempotency_key="eth-1").result(20)
    assert isinstance(accepted, Accepted)
    cid = accepted.order.client_order_id
    first.stop(graceful=False)  # the ETH limit stays live, its request unfinished
    sim.control.fill_order("ETHUSDT", client_order_id=cid, quantity="0.04")  # while no engine runs

    second, events = start(ManualClock(clock.now_ms()), ["BTC/USDT"])
    [fill] = events.wait_for(EventKind.FILL)  # the restored order was looked up: the fill it missed is fetched
    assert fill.client_order_id == cid and fill.order is not None and fill.order.filled == Decimal("0.04")
    # Past the 5 s limit timeout: a tracked pair is never canceled nor falls back. (A cancel sent late would still
    # show below: the order could not end FILLED with all 0.1, and the ledger would hold a second ETH order.)
    second.ticker.advance(10_000)
    settle_all(second)  # barrier: whatever the limit timeout set off has run out before checking nothing was sent
    assert [o["status"] for o in _eth_orders(sim)] == ["PARTIALLY_FILLED"]
    assert [o.client_order_id for o in second.open_orders()] == [cid]  # still visible through the API
    assert [o.filled for o in second.open_orders(ETH)] == [Decimal("0.04")]

    sim.control.fill_order("ETHUSDT", client_order_id=cid)
    second.ticker.advance(60_000)  # the periodic reconciliation looks the engine's own order up
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.status is TradeStatus.FILLED
    assert done.trade.filled == Decimal("0.1")
    assert len(_eth_orders(sim)) == 1  # nothing else was ever sent for ETH
    assert second.open_orders() == [] and second.open_orders(ETH) == []
    _flush(second)
    order_id = accepted.order.exchange_order_id
    ledger_trades = sorted(t["id"] for t in sim.control.ledger()["trades"] if t["orderId"] == order_id)
    assert sorted(f.trade_id for f in _read(db_url, fills_of, cid)) == ledger_trades
    stored = _read(db_url, get_trade, accepted.order.request_id)
    assert stored is not None and stored.filled == Decimal("0.1")


def test_an_intent_never_sent_for_a_pair_taken_off_the_whitelist_is_closed_unsent(
    start: Any, sim: Simulator, db_url: str
) -> None:
    clock = ManualClock(SystemClock().now_ms())
    _write_intent(db_url, "eth-never-sent", clock.now_ms(), pair=ETH, price="2900", amount="0.1")
    engine, events = start(clock, ["BTC/USDT"])
    # The unknown outcome's lookups, then "never created" (a pair actor would re-send it); each step settles first.
    [done] = _advance_until(engine, events, EventKind.DONE, 1_000, 90)  # past the 60 s grace
    assert done.trade is not None and done.trade.filled == 0
    assert "not sent: the pair is not whitelisted" in done.trade.note
    assert _eth_orders(sim) == []  # never placed: the whitelist no longer allows it


def test_unfinished_orders_of_a_pair_the_exchange_does_not_list_raise_an_alert(
    start: Any, sim: Simulator, db_url: str, alerts: list[str]
) -> None:
    clock = ManualClock(SystemClock().now_ms())
    _write_intent(db_url, "xrp-1", clock.now_ms(), pair="XRP/USDT", price="0.5", amount="100")
    engine, _ = start(clock, ["BTC/USDT"])
    assert "orders_untracked" in alerts
    assert engine.place_order("BTC/USDT", "buy", "0.01", "59000").result(20) is not None  # trading goes on
