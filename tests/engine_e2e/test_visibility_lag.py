"""REST lagging the matching engine, end to end (field-lessons: "-2011 can come back for a real order not yet visible
to REST"; REST can lag 10-20 s): a limit fills, or is filling, while REST does not show it; its timeout fires, the
cancel answers -2011, the lookup answers "not found" — and the engine must not take that for "gone with nothing
filled" and send a fallback for the full amount (a double fill). The invariant: what the request bought on the
exchange is at most what was requested, and its trade is the exchange's ledger (quantity and cost). With the user
stream on (its fills arrive while REST still says "not found") and off (REST only).

The engine runs on a manual clock; the simulator's clock is the wall clock plus the same advances, so its
`visibility_lag` (lag_ms of the simulator's clock) ends when the engine's time has moved past it. Real time only adds
a little to the simulator's side: the checks inside the lag are made well before it ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.api import Accepted, Engine, EventKind
from engine.clock import ManualClock
from engine.domain import Trade, TradeStatus
from sim import SimConfig, Simulator, wall_clock_ms
from tests.engine_e2e._stack import Recorder, engine_on, settle, sim_orders

PAIR, SYMBOL = "BTC/USDT", "BTCUSDT"
AMOUNT = Decimal("0.01")
LIMIT = "59950"  # below the market: rests
LAG_MS = 30_000
"""How long REST does not show the limit (of the simulator's clock); the checks inside it end at `INSIDE_MS`."""
INSIDE_MS = 12_000
TIMEOUT_MS = 5_000


class ExchangeTime:
    """The simulator's clock: the wall clock (ccxt signs with it) plus what the test moved the engine's clock by."""

    def __init__(self) -> None:
        self.shift_ms = 0

    def __call__(self) -> int:
        return wall_clock_ms() + self.shift_ms


class Rig:
    """The engine and the simulator, and one clock move for both."""

    def __init__(self, engine: Engine, events: Recorder, sim: Simulator, exchange_time: ExchangeTime) -> None:
        self.engine, self.events, self.sim, self.exchange_time = engine, events, sim, exchange_time
        self.elapsed_ms = 0

    def advance_to(self, elapsed_ms: int, step_ms: int = 1_000) -> None:
        """Move both clocks in `step_ms` steps until `elapsed_ms` after the limit was placed; settle at each step."""
        while self.elapsed_ms < elapsed_ms:
            step = min(step_ms, elapsed_ms - self.elapsed_ms)
            self.exchange_time.shift_ms += step  # the exchange first: what the timers send meets the moved clock
            self.engine.ticker.advance(step)
            self.elapsed_ms += step
            settle(self.engine)

    def lag_the_next_order(self) -> None:
        self.sim.control.add_fault({"kind": "visibility_lag", "target": "POST /api/v3/order", "count": 1,
                                    "lag_ms": LAG_MS})  # fmt: skip

    def place(self) -> str:
        """The lagged limit; returns its client order id."""
        self.lag_the_next_order()
        accepted = self.engine.place_order(PAIR, "buy", str(AMOUNT), LIMIT).result(timeout=20)
        assert isinstance(accepted, Accepted), accepted
        assert accepted.order.status.value == "open"
        return accepted.order.client_order_id

    def done(self) -> Trade:
        self.events.wait(lambda r: bool(r.of(EventKind.DONE)), what="the request's end")
        [done] = self.events.of(EventKind.DONE)
        assert done.trade is not None
        return done.trade

    def assert_ledger_is_the_trade(self, trade: Trade) -> list[dict[str, Any]]:
        """Bought at most what was asked, and the trade is what the exchange executed; returns the engine's orders."""
        orders = sim_orders(self.sim)
        executed = sum((Decimal(o["executedQty"]) for o in orders), Decimal(0))
        cost = sum((Decimal(o["cummulativeQuoteQty"]) for o in orders), Decimal(0))
        assert executed <= AMOUNT, f"bought {executed} for a request of {AMOUNT}: {orders}"
        assert trade.filled == executed, (trade, orders)
        assert trade.average_price is not None and trade.average_price * trade.filled == cost, (trade, orders)
        return orders

    def assert_inside_the_lag(self, cid: str) -> None:
        """Inside the lag: REST still hides the limit, and nothing but the limit was sent."""
        assert self.exchange_time() < self._visible_from(cid), "the lag ended early: a slow machine?"
        assert [o["clientOrderId"] for o in sim_orders(self.sim)] == [cid], "a fallback was sent"

    def _visible_from(self, cid: str) -> int:
        order = self.sim.core.exchange.by_client_id("main", SYMBOL, cid)
        assert order is not None
        return order.visible_from


@pytest.fixture(params=[False, True], ids=["rest_only", "user_stream"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    stream = bool(request.param)
    exchange_time = ExchangeTime()
    sim_config = SimConfig(seed=29, symbols=[SYMBOL], start_prices={SYMBOL: Decimal(60000)}, cross_fills="full")
    config = {
        # The simulator runs ahead of the wall clock ccxt signs with by the advances (up to a minute here).
        "exchange": {"pair_whitelist": [PAIR], "recv_window_ms": 60_000},
        "execution": {"limit_timeout_s": str(TIMEOUT_MS // 1000)},
        "stream": {"user_data": stream, "market_data": False, "watchdog_silence_s": "3600"},
    }
    with (
        Simulator(sim_config, clock=exchange_time) as sim,
        engine_on(sim, tmp_path, config, ManualClock(wall_clock_ms()), subscriptions=1 if stream else None) as (
            engine,
            events,
        ),
    ):
        yield Rig(engine, events, sim, exchange_time)


def test_a_limit_filled_while_rest_does_not_show_it_gets_no_fallback(rig: Rig) -> None:
    cid = rig.place()
    rig.sim.control.set_price(SYMBOL, "59000")  # the market trades through the limit: filled in the matching engine
    assert [(o["status"], o["executedQty"]) for o in sim_orders(rig.sim)] == [("FILLED", "0.01000000")]
    # The timeout fires (unless the stream told the engine first), the cancel answers -2011 and the lookups "not
    # found", over and over: the engine waits, it does not send the amount again.
    rig.advance_to(INSIDE_MS)
    rig.assert_inside_the_lag(cid)
    rig.advance_to(LAG_MS + 30_000)  # REST shows it now: the engine learns it filled
    trade = rig.done()
    assert trade.status is TradeStatus.FILLED and trade.filled == AMOUNT
    [limit] = rig.assert_ledger_is_the_trade(trade)
    assert limit["status"] == "FILLED"


def test_a_limit_filling_while_rest_does_not_show_it_ends_filled_without_a_fallback(rig: Rig) -> None:
    cid = rig.place()
    rig.sim.control.fill_order(SYMBOL, client_order_id=cid, quantity="0.004")
    rig.advance_to(INSIDE_MS)  # timeout, cancel -2011 (the order stays working), lookups "not found"
    rig.assert_inside_the_lag(cid)
    assert [o["status"] for o in sim_orders(rig.sim)] == ["PARTIALLY_FILLED"]
    rig.sim.control.fill_order(SYMBOL, client_order_id=cid)  # the rest fills, REST still lagging
    rig.advance_to(LAG_MS + 30_000)
    trade = rig.done()
    assert trade.status is TradeStatus.FILLED and trade.filled == AMOUNT
    [limit] = rig.assert_ledger_is_the_trade(trade)
    assert limit["status"] == "FILLED"


def test_a_partly_filled_limit_hidden_from_rest_is_canceled_once_visible_and_only_the_remainder_follows(
    rig: Rig,
) -> None:
    cid = rig.place()
    rig.sim.control.fill_order(SYMBOL, client_order_id=cid, quantity="0.004")
    rig.advance_to(INSIDE_MS)
    rig.assert_inside_the_lag(cid)
    rig.advance_to(LAG_MS + 30_000)  # the retried cancel finds it: canceled with 0.004 filled, then the fallback
    trade = rig.done()
    assert trade.status is TradeStatus.FILLED and trade.filled == AMOUNT
    limit, fallback = rig.assert_ledger_is_the_trade(trade)
    assert (limit["status"], limit["executedQty"]) == ("CANCELED", "0.00400000")
    assert (fallback["type"], fallback["origQty"], fallback["status"]) == ("MARKET", "0.00600000", "FILLED")


def test_a_limit_whose_create_answer_was_lost_and_that_filled_while_hidden_is_not_sent_again(rig: Rig) -> None:
    # The create executed but answered 5xx (outcome unknown): the engine looks the order up by client order id and
    # REST says "not found" while the order fills. Re-sent under the same id once filled, Binance takes it again.
    rig.sim.control.add_fault({"kind": "http_error", "target": "POST /api/v3/order", "count": 1, "status": 503,
                               "code": -1006, "execute": True})  # fmt: skip
    rig.lag_the_next_order()
    future = rig.engine.place_order(PAIR, "buy", str(AMOUNT), LIMIT)
    settle(rig.engine)  # the create went out and was answered
    [limit] = sim_orders(rig.sim)
    rig.sim.control.set_price(SYMBOL, "59000")
    rig.advance_to(INSIDE_MS)  # the limit's timeout too: its cancel waits for the order to be seen
    rig.assert_inside_the_lag(limit["clientOrderId"])
    rig.advance_to(LAG_MS + 30_000)
    trade = rig.done()
    assert trade.status is TradeStatus.FILLED and trade.filled == AMOUNT
    [limit] = rig.assert_ledger_is_the_trade(trade)
    assert limit["status"] == "FILLED"
    assert isinstance(future.result(timeout=20), Accepted)
