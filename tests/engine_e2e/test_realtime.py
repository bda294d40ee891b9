"""Fills known the moment Binance reports them: the user data stream wired through the engine (real UBWA)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from engine.api import Accepted, Engine, EventKind
from engine.clock import SystemClock
from engine.config import Config
from sim import FaultSpec, SimConfig, Simulator
from tests.engine_e2e.test_engine_sim import Events

PAIR = "BTC/USDT"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(
        seed=21, symbols=["BTCUSDT", "ETHUSDT"], start_prices={"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    )
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def engine(sim: Simulator, tmp_path: Path) -> Iterator[tuple[Engine, Events]]:
    config = Config.model_validate(
        {
            "exchange": {"pair_whitelist": [PAIR]},
            "execution": {"limit_timeout_s": "600"},
            "stream": {"ping_interval_s": "1", "ping_timeout_s": "1", "watchdog_silence_s": "3"},
        }
    )
    engine = Engine.start(
        config,
        clock=SystemClock(),
        sim=sim,
        database_url=f"sqlite:///{tmp_path}/e.sqlite3",
        spool_path=tmp_path / "spool.jsonl",
    )
    events = Events()
    engine.subscribe(events)
    assert sim.control.wait_subscriptions(1, within_s=20), "the user data stream never subscribed"
    try:
        yield engine, events
    finally:
        engine.stop(graceful=False)


def _place(engine: Engine) -> Any:
    outcome = engine.place_order(PAIR, "buy", "0.01", "59900").result(timeout=20)
    assert isinstance(outcome, Accepted), outcome
    return outcome.order


def test_fills_arrive_over_the_stream_without_polling(engine: tuple[Engine, Events], sim: Simulator) -> None:
    eng, events = engine
    order = _place(eng)
    sim.control.fill_order("BTCUSDT", client_order_id=order.client_order_id, quantity="0.004")
    [fill] = events.wait_for(EventKind.FILL)
    assert fill.fill is not None and fill.fill.quantity == Decimal("0.004") and fill.fill.is_maker
    sim.control.fill_order("BTCUSDT", client_order_id=order.client_order_id)
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.filled == Decimal("0.01")
    assert [f.fill.quantity for f in events.of(EventKind.FILL) if f.fill] == [Decimal("0.004"), Decimal("0.006")]


def test_fills_lost_in_a_disconnect_are_recovered_by_reconciliation(
    engine: tuple[Engine, Events], sim: Simulator
) -> None:
    eng, events = engine
    order = _place(eng)
    # The fill's events are lost (as when the socket is down), then the connection drops.
    sim.control.add_fault(FaultSpec(kind="drop_events", target="user:*", count=4))
    sim.control.fill_order("BTCUSDT", client_order_id=order.client_order_id, quantity="0.006")
    sim.control.abort_ws("user")
    # Reconnect → gap → the live order is queried → its cumulative quantity is ahead → myTrades → the fill.
    [fill] = events.wait_for(EventKind.FILL, timeout=30)
    assert fill.fill is not None and fill.fill.quantity == Decimal("0.006")
    assert [o.filled for o in eng.open_orders(PAIR)] == [Decimal("0.006")]


def test_balances_lost_with_a_stream_gap_are_read_again_after_it(engine: tuple[Engine, Events], sim: Simulator) -> None:
    # The balance updates lost with the gap left `balances()` stale until the minute's account read: a strategy
    # sizing its next order from them saw the quote it had already spent.
    eng, events = engine
    order = _place(eng)
    before = eng.balances()["balances"]
    sim.control.add_fault(FaultSpec(kind="drop_events", target="user:*", count=4))  # the report, the balances
    sim.control.fill_order("BTCUSDT", client_order_id=order.client_order_id, quantity="0.006")
    sim.control.abort_ws("user")
    [fill] = events.wait_for(EventKind.FILL, timeout=30)  # the gap's reconciliation ran
    assert fill.fill is not None and fill.fill.commission_asset == "BTC"
    gateway = eng._root.proxy().gateway.get(timeout=10)
    bought = Decimal("0.006") - fill.fill.commission
    # The account read, then its prices (asked by the root once the account is in); when a read was under way at the
    # gap (the start's, under load), one more follows it: up to two chains of two answers each.
    for _ in range(4):
        assert gateway.idle(10)
        eng._root.proxy().pair_refs().get(timeout=10)  # barrier: the root took the answer
        if Decimal(eng.balances()["balances"]["BTC"]["free"]) == Decimal(before["BTC"]["free"]) + bought:
            break
    after = eng.balances()["balances"]
    assert Decimal(after["BTC"]["free"]) == Decimal(before["BTC"]["free"]) + bought
    # USDT: the order's lock may or may not be in `before` (its own balance update races this read); free + locked
    # is the account's whole USDT either way, less what the fill cost.
    usdt = {k: Decimal(v["USDT"]["free"]) + Decimal(v["USDT"]["locked"]) for k, v in (("b", before), ("a", after))}
    assert usdt["a"] == usdt["b"] - Decimal("0.006") * fill.fill.price


def test_an_order_placed_outside_the_engine_is_seen_on_the_stream_and_announced(
    engine: tuple[Engine, Events], sim: Simulator
) -> None:
    eng, events = engine
    # a person in the Binance UI: one order on the whitelisted pair, one on a pair the engine does not trade
    sim.control.place_external_order(
        symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01", price="65000",
        newClientOrderId="web_btc_1",
    )  # fmt: skip
    sim.control.place_external_order(symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.1")
    seen = events.wait_for(EventKind.EXTERNAL, count=2)
    assert {str(e.pair) for e in seen} == {"BTC/USDT", "ETH/USDT"}
    assert all(e.order is not None and e.order.role.value == "external" for e in seen)
    eth = next(e for e in seen if str(e.pair) == "ETH/USDT")
    fills = events.wait_for(EventKind.FILL)
    assert any(f.client_order_id == eth.client_order_id for f in fills)  # its fill is recorded, not traded on
    assert isinstance(eng.place_order(PAIR, "buy", "0.01", "59900").result(timeout=20), Accepted)


def test_an_outside_market_order_for_a_quote_amount_is_tracked_without_killing_its_pair(
    engine: tuple[Engine, Events], sim: Simulator
) -> None:
    eng, events = engine
    died: list[str] = []
    sink = logger.add(lambda m: died.append(str(m)), filter=lambda r: "pair actor died" in r["message"])
    try:
        # "buy 100 USDT of BTC" in the UI: reported NEW with quantity 0, its quantity known only as it fills
        sim.control.place_external_order(symbol="BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="100",
                                         newClientOrderId="web_q_1")  # fmt: skip
        [seen] = events.wait_for(EventKind.EXTERNAL)
        assert seen.client_order_id == "web_q_1" and "quote amount" in seen.message
        fills = [f for f in events.wait_for(EventKind.FILL) if f.client_order_id == "web_q_1"]
        assert fills and fills[0].fill is not None and fills[0].fill.quantity > 0
        assert isinstance(eng.place_order(PAIR, "buy", "0.01", "59900").result(timeout=20), Accepted)
    finally:
        logger.remove(sink)
    assert not died


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_rsa_and_ed25519_keys_get_their_fills_over_the_stream(kind: str, tmp_path: Path) -> None:
    from sim import AccountSpec
    from tests.config.keys import ed25519_pem, rsa_pem

    secret = rsa_pem() if kind == "rsa" else ed25519_pem()
    account = AccountSpec(
        name="pem", api_key="P" * 64, secret=secret, balances={"BTC": Decimal(1), "USDT": Decimal(100_000)}
    )
    config = SimConfig(seed=22, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, accounts=[account])
    with Simulator(config) as sim:
        engine_config = Config.model_validate(
            {"exchange": {"pair_whitelist": [PAIR]}, "execution": {"limit_timeout_s": "600"},
             "stream": {"market_data": False, "reconcile_interval_s": "3600"}}
        )  # fmt: skip
        events = Events()
        eng = Engine.start(engine_config, clock=SystemClock(), sim=sim, database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                           spool_path=tmp_path / "spool.jsonl", listeners=[events])  # fmt: skip
        try:
            assert sim.control.wait_subscriptions(1, within_s=20), f"no user data subscription with a {kind} key"
            order = _place(eng)
            sim.control.fill_order("BTCUSDT", client_order_id=order.client_order_id)
            [fill] = events.wait_for(EventKind.FILL)  # over the stream: reconciliation is an hour away
            assert fill.fill is not None and fill.fill.quantity == Decimal("0.01")
        finally:
            eng.stop(graceful=False)


@pytest.mark.parametrize(
    "fault",
    [
        FaultSpec(kind="events_first", target="* /api/v3/order"),  # every report before its REST answer
        FaultSpec(kind="delay_events", target="user:*", delay_ms=300),  # every report well after it
    ],
    ids=["stream-first", "stream-late"],
)
def test_an_order_comes_out_the_same_whichever_arrives_first_its_reports_or_its_rest_answer(
    engine: tuple[Engine, Events], sim: Simulator, fault: FaultSpec
) -> None:
    # Binance does not order an order's REST answer and its stream reports. A taker filled at once and a resting
    # limit canceled by the caller: one FILL per trade, one DONE per request, the trades as filled.
    eng, events = engine
    sim.control.add_fault(fault)
    taker = eng.place_order(PAIR, "buy", "0.01", "61000").result(timeout=20)
    assert isinstance(taker, Accepted), taker
    # The taker's DONE may follow its Accepted; a second buy before it would be refused as a conflict.
    events.wait_for(EventKind.DONE)
    resting = _place(eng)
    eng.cancel_order(PAIR, resting.request_id)
    done = {e.request_id: e for e in events.wait_for(EventKind.DONE, count=2)}
    assert done[taker.order.request_id].trade.filled == Decimal("0.01")  # type: ignore[union-attr]
    assert done[resting.request_id].trade.filled == 0  # type: ignore[union-attr]
    fills = [e.fill.trade_id for e in events.of(EventKind.FILL) if e.fill is not None]
    assert fills and len(fills) == len(set(fills))
    assert len(events.of(EventKind.DONE)) == 2


def test_a_limit_expired_by_self_trade_prevention_is_not_chased_with_a_fallback(
    engine: tuple[Engine, Events], sim: Simulator
) -> None:
    # A person sells into the engine's working buy from the Binance UI (the same account): the exchange's default
    # self-trade prevention (EXPIRE_MAKER) expires the engine's order. Buying the rest at market would undo the
    # person's sale; the request ends as if the order were canceled outside, and says why.
    eng, events = engine
    sim.control.set_quote("BTCUSDT", "59000", "61000")
    order = eng.place_order(PAIR, "buy", "0.01", "60000").result(timeout=20)
    assert isinstance(order, Accepted), order
    sim.control.place_external_order(
        symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="IOC", quantity="0.01", price="59500"
    )
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.filled == 0
    assert "self-trade prevention" in done.trade.note, done.trade.note
    ours = [o for o in sim.control.ledger()["orders"] if not o["external"]]
    assert [(o["type"], o["status"]) for o in ours] == [("LIMIT", "EXPIRED_IN_MATCH")]  # no fallback went out
