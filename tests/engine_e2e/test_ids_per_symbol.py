"""Binance numbers orders and trades per symbol, so two pairs' orders share orderIds and their trades share tradeIds
(the simulator starts every symbol at the same ids). The engine keys nothing by an exchange id alone: both pairs'
orders, fills and trades are stored and reported apart, a cancel on one pair leaves the other's order of the same id
alone, and a fill on one is never taken for the other's. With the user stream on and off (REST only)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from db import connect, find_orders, find_trades
from engine.api import Accepted, CancelStatus, Engine, EventKind
from engine.domain import Trade, TradeStatus
from sim import SimConfig, Simulator
from tests.engine_e2e._stack import Recorder, db_fills, engine_on, settle, sim_orders

BTC, ETH = "BTC/USDT", "ETH/USDT"
PRICES = {"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}


@pytest.fixture(params=[False, True], ids=["rest_only", "user_stream"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Recorder, Simulator]]:
    stream = bool(request.param)
    config = {
        "exchange": {"pair_whitelist": [BTC, ETH]},
        "execution": {"limit_timeout_s": "600"},
        "stream": {"user_data": stream, "market_data": False},
    }
    with (
        Simulator(SimConfig(seed=31, symbols=list(PRICES), start_prices=PRICES)) as sim,
        engine_on(sim, tmp_path, config, subscriptions=1 if stream else None) as (engine, events),
    ):
        yield engine, events, sim


def _place(engine: Engine, pair: str, amount: str, price: str) -> str:
    accepted = engine.place_order(pair, "buy", amount, price).result(timeout=20)
    assert isinstance(accepted, Accepted), accepted
    return accepted.order.request_id


def _trade(events: Recorder, request_id: str) -> Trade:
    events.wait(lambda r: any(e.request_id == request_id for e in r.of(EventKind.DONE)), what=f"done {request_id}")
    [done] = [e for e in events.of(EventKind.DONE) if e.request_id == request_id]
    assert done.trade is not None
    return done.trade


def test_two_pairs_orders_and_trades_of_the_same_ids_stay_apart(rig: Any, tmp_path: Path) -> None:
    engine, events, sim = rig
    # Marketable limits: filled at once, each pair's first order and first trade.
    btc_taker, eth_taker = _place(engine, BTC, "0.01", "60100"), _place(engine, ETH, "0.1", "3010")
    for request_id, amount in ((btc_taker, "0.01"), (eth_taker, "0.1")):
        trade = _trade(events, request_id)
        assert trade.status is TradeStatus.FILLED and trade.filled == Decimal(amount)
    # Resting limits, again with the same order id on both pairs: one filled in part, the other canceled.
    btc_rest, eth_rest = _place(engine, BTC, "0.01", "59000"), _place(engine, ETH, "0.1", "2900")
    orders = sim_orders(sim)
    assert len({o["orderId"] for o in orders}) == 2, "the simulator's ids did not collide"
    sim.control.fill_order("ETHUSDT", order_id=orders[-1]["orderId"], quantity="0.04")
    assert engine.cancel_order(BTC, btc_rest).result(timeout=20).status is CancelStatus.CANCEL_SENT
    btc_trade = _trade(events, btc_rest)
    assert btc_trade.filled == 0 and btc_trade.status is TradeStatus.CANCELED
    assert engine.cancel_order(ETH, eth_rest).result(timeout=20).status is CancelStatus.CANCEL_SENT
    eth_trade = _trade(events, eth_rest)
    assert eth_trade.filled == Decimal("0.04") and eth_trade.status is TradeStatus.PARTIAL
    settle(engine)
    assert [(o["symbol"], o["status"]) for o in sim_orders(sim)] == [
        ("BTCUSDT", "FILLED"), ("ETHUSDT", "FILLED"), ("BTCUSDT", "CANCELED"), ("ETHUSDT", "CANCELED"),
    ]  # fmt: skip
    assert events.of(EventKind.ERROR) == []
    engine.stop()
    ledger = {
        (t["symbol"], int(t["id"])): (Decimal(t["qty"]), Decimal(t["price"])) for t in sim.control.ledger()["trades"]
    }
    assert len({trade_id for _symbol, trade_id in ledger}) < len(ledger), "no trade id was shared"
    stored = {(f.pair.replace("/", ""), int(f.trade_id)): (f.quantity, f.price) for f in db_fills(tmp_path)}
    assert stored == ledger
    database = connect(f"sqlite:///{tmp_path}/engine.sqlite3")
    try:
        want = {(o["symbol"], int(o["orderId"])): (o["status"], Decimal(o["executedQty"])) for o in sim_orders(sim)}
        got = {
            (str(o.pair).replace("/", ""), int(o.exchange_order_id or 0)): (o.status.value, o.filled)
            for o in find_orders(database)
        }
        assert {k: v[1] for k, v in got.items()} == {k: v[1] for k, v in want.items()}
        assert {t.request_id: t.filled for t in find_trades(database)} == {
            btc_taker: Decimal("0.01"), eth_taker: Decimal("0.1"), btc_rest: 0, eth_rest: Decimal("0.04"),
        }  # fmt: skip
    finally:
        database.close()


def test_both_sides_of_a_self_trade_are_stored(tmp_path: Path) -> None:
    # The engine's resting buy and an order placed outside the engine (same account) with self-trade prevention
    # NONE trade with each other: one trade id, a row per order in myTrades. The fills table kept one of the two.
    prices = {"BTCUSDT": PRICES["BTCUSDT"]}
    config = {"exchange": {"pair_whitelist": [BTC]}, "execution": {"limit_timeout_s": "600"},
              "stream": {"market_data": False}}  # fmt: skip
    with (
        Simulator(SimConfig(seed=3, symbols=list(prices), start_prices=prices)) as sim,
        engine_on(sim, tmp_path, config, subscriptions=1) as (engine, events),
    ):
        best_bid = sim.core.exchange.markets["BTCUSDT"].best_bid
        price = str(best_bid + Decimal("0.01"))  # the best bid: the outside sell meets it first
        request_id = _place(engine, BTC, "0.01", price)
        sim.control.place_external_order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC",
                                          quantity="0.01", price=price, selfTradePreventionMode="NONE",
                                          newClientOrderId="web_outside")  # fmt: skip
        assert _trade(events, request_id).filled == Decimal("0.01")
        events.wait(lambda r: len(r.of(EventKind.FILL)) == 2, what="both sides' fills")
        settle(engine)
        engine.stop()
        ledger = sim.control.ledger()["trades"]
    assert len({t["id"] for t in ledger}) == 1 and len(ledger) == 2
    want = sorted((int(t["id"]), int(t["orderId"]), t["isBuyer"]) for t in ledger)
    got = sorted((int(f.trade_id), int(f.exchange_order_id), f.side.value == "buy") for f in db_fills(tmp_path))
    assert got == want
