"""Fees paid in BNB, and BNB running out part-way, through the whole stack (ccxt and UBWA over loopback).

The account pays fees with BNB (`AccountSpec(bnb_fees=True)`): a fill's fee is in BNB while the free BNB covers it,
else in the asset received (the base for a buy, the quote for a sell). Checked for every trade: each fill reaches the
engine and its database once with the simulator's commission and asset; the trade's `fees` per asset are the ledger's
sums; its filled quantity and average price are the fills'; `received` is what the account gained; a sell of it goes
through; `engine.balances()` is the simulator's account once the stream's balance updates are in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.api import Accepted, Engine, EventKind
from engine.domain import Side, Trade, TradeStatus
from sim import AccountSpec, SimConfig, Simulator
from tests.engine_e2e._stack import Recorder, db_fills, engine_on, ledger_trades, sim_orders

PAIR = "BTC/USDT"
STEP = Decimal("0.00001")  # BTCUSDT's lot step


def _sim(bnb: str) -> Simulator:
    account = AccountSpec(balances={"USDT": Decimal(100_000), "BNB": Decimal(bnb)}, bnb_fees=True)
    return Simulator(
        SimConfig(
            seed=31,
            symbols=["BTCUSDT", "BNBUSDT"],
            start_prices={"BTCUSDT": Decimal(60000), "BNBUSDT": Decimal(600)},
            accounts=[account],
        )
    )


def _config() -> dict[str, Any]:
    return {
        "exchange": {"pair_whitelist": [PAIR]},
        "execution": {"limit_timeout_s": "5"},
        "stream": {"user_data": True, "market_data": False},
        "risk": {"max_order_notional": "1000000"},
    }


def _wallet_read_over(engine: Engine) -> None:
    """Barrier: the wallet read (the account, then its prices) asked by the first subscription is in. One that
    overlapped a fill was once seen to put back the BNB from before the fill's fee (an engine defect, reported)."""
    gateway = engine._root.proxy().gateway.get(timeout=10)
    for _ in range(2):
        assert gateway.idle(10)
        engine._root.proxy().pair_refs().get(timeout=10)


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Simulator, Engine, Recorder]]:
    with _sim(request.param) as sim, engine_on(sim, tmp_path, _config(), subscriptions=1) as (engine, events):
        _wallet_read_over(engine)
        yield sim, engine, events


def _done(events: Recorder, request_id: str) -> Trade:
    events.wait(lambda r: any(e.request_id == request_id for e in r.of(EventKind.DONE)), what=f"DONE of {request_id}")
    [done] = [e for e in events.of(EventKind.DONE) if e.request_id == request_id]
    assert done.trade is not None
    return done.trade


def _check_trade(sim: Simulator, events: Recorder, trade: Trade) -> dict[str, Decimal]:
    """The trade against the simulator's ledger; returns its fees per asset."""
    fills = [e.fill for e in events.of(EventKind.FILL) if e.request_id == trade.request_id and e.fill is not None]
    cids = {f.client_order_id for f in fills}
    order_ids = {int(o["orderId"]) for o in sim_orders(sim) if o["clientOrderId"] in cids}
    ledger = {int(t["id"]): t for t in ledger_trades(sim) if int(t["orderId"]) in order_ids}
    assert sorted(int(f.trade_id) for f in fills) == sorted(ledger), "each fill once, none missing"
    for f in fills:
        row = ledger[int(f.trade_id)]
        assert (f.commission, f.commission_asset) == (Decimal(row["commission"]), row["commissionAsset"])
    fees: dict[str, Decimal] = {}
    for row in ledger.values():
        if Decimal(row["commission"]) > 0:
            fees[row["commissionAsset"]] = fees.get(row["commissionAsset"], Decimal(0)) + Decimal(row["commission"])
    assert dict(trade.fees) == fees
    qty = sum((Decimal(r["qty"]) for r in ledger.values()), Decimal(0))
    quote = sum((Decimal(r["quoteQty"]) for r in ledger.values()), Decimal(0))
    assert trade.filled == qty and trade.average_price == quote / qty
    return fees


def _balances_match(sim: Simulator, engine: Engine) -> None:
    """`engine.balances()` is the simulator's account once the stream's updates are in (asks to the root as
    barriers; the last outboundAccountPosition may still be on its way through UBWA)."""
    want = {
        a: {"free": Decimal(b["free"]), "locked": Decimal(b["locked"])}
        for a, b in sim.control.ledger()["balances"].items()
        if Decimal(b["free"]) + Decimal(b["locked"]) > 0
    }
    got: dict[str, dict[str, Decimal]] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        engine._root.proxy().pair_refs().get(timeout=10)  # barrier: the root handled what it was told
        rows = engine.balances()["balances"]
        got = {a: {k: Decimal(v[k]) for k in ("free", "locked")} for a, v in rows.items()}
        if got == want:
            return
    raise AssertionError(f"engine balances {got} != simulator's {want}")


def _market(engine: Engine, side: str, amount: Decimal) -> str:
    outcome = engine.place_order(PAIR, side, str(amount), order_type="market").result(timeout=20)
    assert isinstance(outcome, Accepted), outcome
    return str(outcome.order.request_id)


@pytest.mark.parametrize("stack", ["0.015"], indirect=True)
def test_a_market_buy_whose_bnb_runs_out_mid_way_then_a_sell_of_what_it_received(
    stack: tuple[Simulator, Engine, Recorder], tmp_path: Path
) -> None:
    sim, engine, events = stack
    # 0.5 BTC walks three ask levels; 0.015 BNB pays the first level's fee (~0.0115), not the next ones'.
    bought = _done(events, _market(engine, "buy", Decimal("0.5")))
    assert bought.status is TradeStatus.FILLED
    fees = _check_trade(sim, events, bought)
    assert set(fees) == {"BNB", "BTC"}, fees
    assert bought.received == Decimal("0.5") - fees["BTC"]
    assert Decimal(sim.control.ledger()["balances"]["BTC"]["free"]) == bought.received
    _balances_match(sim, engine)
    # The sell of what the buy received: not refused, not resized; too little BNB left, so USDT pays.
    amount = bought.received.quantize(STEP, ROUND_DOWN)
    sold = _done(events, _market(engine, "sell", amount))
    assert (sold.status, sold.side, sold.filled, sold.requested) == (TradeStatus.FILLED, Side.SELL, amount, amount)
    assert set(_check_trade(sim, events, sold)) == {"USDT"}
    _balances_match(sim, engine)
    engine.stop()
    _stored_once(sim, tmp_path)


@pytest.mark.parametrize("stack", ["0.0005"], indirect=True)
def test_limit_partial_then_fallback_with_bnb_running_out_then_bnb_deposited(
    stack: tuple[Simulator, Engine, Recorder], tmp_path: Path
) -> None:
    sim, engine, events = stack
    outcome = engine.place_order(PAIR, "buy", "0.01", "59950").result(timeout=20)
    assert isinstance(outcome, Accepted), outcome
    # The maker partial pays ~0.0003 BNB; the ~0.0002 left cannot pay the fallback's ~0.00045: it pays in BTC.
    sim.control.fill_order("BTCUSDT", client_order_id=outcome.order.client_order_id, quantity="0.004")
    events.wait(lambda r: r.count(EventKind.FILL) >= 1, what="the partial fill")
    engine.ticker.advance(5_000)
    bought = _done(events, str(outcome.order.request_id))
    fees = _check_trade(sim, events, bought)
    assert set(fees) == {"BNB", "BTC"} and bought.filled == Decimal("0.01"), fees
    assert [o["type"] for o in sim_orders(sim)] == ["LIMIT", "MARKET"]
    assert bought.received == Decimal("0.01") - fees["BTC"]
    _balances_match(sim, engine)
    # Sell what was received as a limit: a partial, then the fallback; the fees in USDT (BNB is short).
    amount = bought.received.quantize(STEP, ROUND_DOWN)
    sell = engine.place_order(PAIR, "sell", str(amount), "60050").result(timeout=20)
    assert isinstance(sell, Accepted), sell
    before = events.count(EventKind.FILL)
    sim.control.fill_order("BTCUSDT", client_order_id=sell.order.client_order_id, quantity="0.003")
    events.wait(lambda r: r.count(EventKind.FILL) > before, what="the sell's partial fill")
    engine.ticker.advance(5_000)
    sold = _done(events, str(sell.order.request_id))
    assert (sold.status, sold.filled) == (TradeStatus.FILLED, amount)
    assert set(_check_trade(sim, events, sold)) == {"USDT"}
    _balances_match(sim, engine)
    # A deposit of BNB (balanceUpdate): the next buy pays only BNB, so all it bought can be sold.
    sim.control.credit(None, "BNB", "1")
    again = _done(events, _market(engine, "buy", Decimal("0.02")))
    assert set(_check_trade(sim, events, again)) == {"BNB"} and again.received == again.filled == Decimal("0.02")
    out = _done(events, _market(engine, "sell", again.filled))
    assert out.filled == Decimal("0.02") and set(_check_trade(sim, events, out)) == {"BNB"}
    _balances_match(sim, engine)
    engine.stop()
    _stored_once(sim, tmp_path)


def _stored_once(sim: Simulator, tmp_path: Path) -> None:
    """Every fill of the account is in the engine's database once, with the ledger's commission and asset."""
    stored = db_fills(tmp_path)
    ledger = {int(t["id"]): t for t in ledger_trades(sim)}
    assert sorted(int(f.trade_id) for f in stored) == sorted(ledger)
    for f in stored:
        row = ledger[int(f.trade_id)]
        assert (f.commission, f.commission_asset) == (Decimal(row["commission"]), row["commissionAsset"])


def test_bnb_bought_pays_its_own_fee_and_what_is_left_of_it_can_be_sold(tmp_path: Path) -> None:
    # BNB/USDT with no BNB at the start: the buy's fee is BNB out of what it bought (the base asset), so
    # `received` is less than `filled`; the sell of it leaves a dust of BNB too small for its fee: USDT pays.
    config = _config() | {"exchange": {"pair_whitelist": ["BNB/USDT"]}}
    with _sim("0") as sim, engine_on(sim, tmp_path, config, subscriptions=1) as (engine, events):
        _wallet_read_over(engine)
        outcome = engine.place_order("BNB/USDT", "buy", "1", order_type="market").result(timeout=20)
        assert isinstance(outcome, Accepted), outcome
        bought = _done(events, str(outcome.order.request_id))
        assert set(_check_trade(sim, events, bought)) == {"BNB"}
        assert bought.received == 1 - bought.fees["BNB"] == Decimal(sim.control.ledger()["balances"]["BNB"]["free"])
        amount = bought.received.quantize(Decimal("0.001"), ROUND_DOWN)  # BNBUSDT's lot step
        sell = engine.place_order("BNB/USDT", "sell", str(amount), order_type="market").result(timeout=20)
        assert isinstance(sell, Accepted), sell
        sold = _done(events, str(sell.order.request_id))
        assert sold.filled == amount and set(_check_trade(sim, events, sold)) == {"USDT"}
        _balances_match(sim, engine)
        engine.stop()
        _stored_once(sim, tmp_path)
