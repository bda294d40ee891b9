"""Many fills through the whole stack: resting limits on 20 pairs, filled by the simulator in small partial fills
that arrive over the real user data stream (UBWA) — every one must reach the engine once, and be stored once.

The fills are generated on the simulator's loop without yielding between them (a real burst: the frames queue
up on the socket); the test then waits on the engine's own FILL/DONE events. 500 fills per order is also
Binance's default myTrades page, so a reconciliation of any of these orders would still see all of them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from engine.api import Accepted, EventKind
from engine.domain import TradeStatus
from sim import Simulator
from tests.engine_e2e._stack import (
    PAIRS20,
    PRICES20,
    db_fills,
    engine_on,
    ledger_trades,
    rich_sim_config,
    step_of,
    tick_of,
)
from tests.stream._helpers import on_sim_loop

SEED = 20


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(rich_sim_config(SEED).model_copy(update={"record_requests": True})) as simulator:
        yield simulator


def _config() -> dict[str, Any]:
    return {
        "exchange": {"pair_whitelist": PAIRS20},
        # Nothing may time out or fall back while the fills stream in; only the user data stream is on.
        "execution": {"limit_timeout_s": "3600"},
        "stream": {"user_data": True, "market_data": False},
        "risk": {"max_order_notional": "100000000", "max_open_orders_per_pair": 4},
        "logging": {"level": "WARNING"},
    }


def _burst(sim: Simulator, orders: list[tuple[str, int, Decimal]], rounds: int) -> None:
    """`rounds` fills of one lot step on every order, round-robin over the pairs, on the simulator loop."""

    async def go() -> None:
        ops = sim.control.ops
        for _ in range(rounds):
            for symbol, order_id, step in orders:
                await ops.fill_order(symbol=symbol, order_id=order_id, quantity=step)

    on_sim_loop(sim, go(), timeout=300)


def _run(sim: Simulator, tmp_path: Path, fills_per_order: int) -> None:
    print(f"simulator seed {SEED}; {fills_per_order} fills on each of {len(PAIRS20)} orders")
    total = fills_per_order * len(PAIRS20)
    # The first subscription's reconciliation must be over before the orders go out: it would look them up.
    reconciled = threading.Event()
    sink = logger.add(lambda _m: reconciled.set(), level="INFO",
                      filter=lambda r: r["message"].startswith("reconciliation (first subscription)"))  # fmt: skip
    with engine_on(sim, tmp_path, _config(), subscriptions=1) as (engine, events):
        assert reconciled.wait(30), "the first subscription's reconciliation never ran"
        logger.remove(sink)
        placed: dict[str, Any] = {}
        futures = {}
        for pair in PAIRS20:
            symbol = pair.replace("/", "")
            step = step_of(symbol)
            price = (PRICES20[symbol] * Decimal("0.99")).quantize(tick_of(symbol))  # rests below the market
            futures[pair] = engine.place_order(
                pair, "buy", step * fills_per_order, price, idempotency_key=f"many-{pair}"
            )
        for pair, future in futures.items():
            outcome = future.result(timeout=60)
            assert isinstance(outcome, Accepted), (pair, outcome)
            placed[pair] = outcome.order
        orders = [
            (pair.replace("/", ""), int(order.exchange_order_id), step_of(pair.replace("/", "")))
            for pair, order in placed.items()
        ]
        before = len(sim.control.requests())
        _burst(sim, orders, fills_per_order)
        events.wait(
            lambda r: r.count(EventKind.DONE) >= len(PAIRS20),
            timeout=240,
            what=f"{len(PAIRS20)} DONE events after {total} fills",
        )
        fills = [e.fill for e in events.of(EventKind.FILL) if e.fill is not None]
        # From the stream alone: a fill missed there would be fetched back by myTrades (or an order lookup)
        # and still reach the ledger, so only the absence of those requests proves none was missed.
        during = [(r["method"], r["path"]) for r in sim.control.requests()[before:]]
        fetched = [r for r in during if r[1] in ("/api/v3/myTrades", "/api/v3/order") and r[0] == "GET"]
        assert fetched == [], f"{len(fetched)} REST lookups during the burst: fills were missed on the stream"
        engine.stop()
    ledger = ledger_trades(sim)
    assert len(ledger) == total
    # Every fill reached the engine exactly once, per order, with the exchange's quantity.
    assert len(fills) == total, f"{len(fills)} FILL events for {total} fills"
    per_order = Counter(f.client_order_id for f in fills)
    assert set(per_order) == {o.client_order_id for o in placed.values()}
    assert set(per_order.values()) == {fills_per_order}
    assert len({(f.client_order_id, f.trade_id) for f in fills}) == total, "a fill was reported twice"
    # The database holds the ledger: the same trades, once each, with the same quantities and prices.
    stored = db_fills(tmp_path)
    assert len(stored) == total
    want = {(t["symbol"], int(t["id"])): (Decimal(t["qty"]), Decimal(t["price"])) for t in ledger}
    got = {(f.pair.replace("/", ""), int(f.trade_id)): (f.quantity, f.price) for f in stored}
    assert got == want
    # Every order ended FILLED, and every request's summary says so.
    dones = events.of(EventKind.DONE)
    assert len(dones) == len(PAIRS20)
    for done in dones:
        assert done.trade is not None and done.trade.status is TradeStatus.FILLED
        assert done.trade.remainder == 0
    assert {o["status"] for o in sim.control.ledger()["orders"]} == {"FILLED"}


def test_10000_fills_across_20_pairs_reach_the_engine_once(sim: Simulator, tmp_path: Path) -> None:
    _run(sim, tmp_path, fills_per_order=500)  # ≈ 25 s on two cores
