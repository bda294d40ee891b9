"""A restart with hundreds of live orders, against a request-weight limit a naive reconciliation would break.

Nautilus issue #780: startup reconciliation got users IP-banned — it asked about every order at once. Here an engine
leaves 300 resting limits over six pairs (stopped like a crash, nothing canceled); while it is down some fill, some
fill in part and some are canceled from outside. A new engine starts on the same database and simulator, whose
REQUEST_WEIGHT limit (1,000 a minute, as exchangeInfo says) is below what looking each order up costs (300 × 4).
It must bring them all up to date without one 429 or 418 — the start's open-orders scans answer for every order
they list, only the rest are looked up — take new orders as soon as it has started, and end with its database
equal to the simulator's ledger.

Time: the simulator's clock is the wall clock plus the test's moves (ccxt signs with the wall clock), and the new
engine's manual clock starts at the wall clock's time and moves with it: the engine's rate windows turn with the
simulator's. Placing the 300 orders takes no move of the clock (the order-count limits are set out of the way).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from db import connect, find_orders, find_trades
from db._models import FillRow
from engine.api import Accepted, Engine
from engine.clock import ManualClock
from engine.config import Config
from engine.domain import Order, OrderStatus, TradeStatus
from sim import AccountSpec, SimConfig, Simulator, wall_clock_ms
from tests.engine_e2e._scale_helpers import ExchangeTime, ThrottleTally, barrier, weight_by_minute
from tests.engine_e2e._stack import PRICES20, step_of, tick_of

SEED = 780
PER_PAIR = 50
SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT"]
WEIGHT_LIMIT = 1_000
"""The simulator's REQUEST_WEIGHT per minute: the 300 lookups alone weigh 1,200."""
_LEDGER_STATUS = {"NEW": OrderStatus.OPEN, "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
                  "FILLED": OrderStatus.FILLED, "CANCELED": OrderStatus.CANCELED}  # fmt: skip


def _pair(symbol: str) -> str:
    return f"{symbol.removesuffix('USDT')}/USDT"


_CONFIG = {
    "stream": {"user_data": False, "market_data": False},  # REST only: every lookup is a request
    # The simulator runs ahead of the clock ccxt signs with by the test's moves (under a minute here).
    "exchange": {"pair_whitelist": [_pair(s) for s in SYMBOLS], "recv_window_ms": 60_000},
    "execution": {"limit_timeout_s": "7200", "conflict_policy": "parallel"},  # 50 resting buys a pair, for hours
    "risk": {"max_open_orders_per_pair": PER_PAIR + 1},  # room for the new order after the restart
}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Simulator, ExchangeTime, ThrottleTally]]:
    balances = {"USDT": Decimal(10**7)} | {s.removesuffix("USDT"): Decimal(10**6) for s in SYMBOLS}
    config = SimConfig(
        seed=SEED,
        symbols=SYMBOLS,
        start_prices={s: PRICES20[s] for s in SYMBOLS},
        accounts=[AccountSpec(balances=balances)],
        rate_limits={"request_weight_per_minute": WEIGHT_LIMIT, "orders_per_10s": 10_000, "orders_per_day": 10**6},
        record_requests=True,
    )
    exchange_time = ExchangeTime()
    with Simulator(config, clock=exchange_time) as sim:
        yield sim, exchange_time, ThrottleTally(sim)


def _start(sim: Simulator, tmp_path: Path) -> Engine:
    return Engine.start(
        Config.model_validate(_CONFIG),
        clock=ManualClock(wall_clock_ms()),
        sim=sim,
        database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
        spool_path=tmp_path / "spool.jsonl",
    )


def _place_resting(engine: Engine) -> list[Accepted]:
    """50 resting buys a pair, each 0.1 % to 0.35 % below the market and worth about 20 USDT."""
    futures = []
    for symbol in SYMBOLS:
        price, tick, step = PRICES20[symbol], tick_of(symbol), step_of(symbol)
        amount = (Decimal(20) / price).quantize(step, ROUND_DOWN)
        for k in range(PER_PAIR):
            limit = (price * (1 - Decimal("0.001") - Decimal("0.00005") * k)).quantize(tick, ROUND_DOWN)
            key = f"scale-{symbol}-{k}"
            futures.append(engine.place_order(_pair(symbol), "buy", str(amount), str(limit), idempotency_key=key))
    outcomes = [f.result(timeout=60) for f in futures]
    refused = [o for o in outcomes if not isinstance(o, Accepted)]
    assert not refused, refused[:3]
    return [o for o in outcomes if isinstance(o, Accepted)]


def _change_while_down(sim: Simulator, placed: list[Accepted]) -> dict[str, str]:
    """Seeded: 6 orders fill, 4 fill in part, 5 are canceled from outside. Returns cid → what happened."""
    picked = random.Random(SEED).sample(placed, 15)
    changed: dict[str, str] = {}
    for i, accepted in enumerate(picked):
        order = accepted.order
        symbol, cid = order.pair.replace("/", ""), str(order.client_order_id)
        if i < 6:
            sim.control.fill_order(symbol, client_order_id=cid)
            changed[cid] = "FILLED"
        elif i < 10:
            sim.control.fill_order(symbol, client_order_id=cid, quantity=str(order.amount / 2))
            changed[cid] = "PARTIALLY_FILLED"
        else:
            sim.control.cancel_external_order(None, symbol, client_order_id=cid)
            changed[cid] = "CANCELED"
    return changed


def _restart(sim: Simulator, exchange_time: ExchangeTime, tmp_path: Path) -> tuple[Engine, dict[str, str], int]:
    """300 resting limits, a crash, 15 of them changed while down, and a new engine started half a minute into a
    minute of the simulator's clock (it may spend 900 weight, its 10 % margin kept, before the minute turns). Returns
    the new engine, what changed (cid → ledger status) and the request log's length before the new engine started."""
    first = _start(sim, tmp_path)
    try:
        placed = _place_resting(first)
        barrier(first)  # every ack stored
    finally:
        first.stop(graceful=False)  # like a crash: the orders stay at the exchange
    assert len(placed) == 300
    changed = _change_while_down(sim, placed)
    now = exchange_time()
    exchange_time.jump_to(now - now % 60_000 + 90_000)
    mark = len(sim.control.requests())
    return _start(sim, tmp_path), changed, mark


def test_restart_with_300_live_orders_reconciles_within_the_weight_limit(rig: Any, tmp_path: Path) -> None:
    sim, exchange_time, tally = rig
    second, changed, mark = _restart(sim, exchange_time, tmp_path)
    try:
        gateway = second._root.proxy().gateway.get(timeout=10)
        exchange_time.advance(second, 45_000)  # past the next minute's turn, and 15 s on
        assert tally.refusals == [], tally.refusals[:3]  # not one 429 or 418
        assert gateway.idle(30), gateway.stats()
        barrier(second)
        stats = gateway.stats()
        assert (stats.blocked_until_ms, stats.creates_held_until_ms) == (0, 0), stats  # never throttled
        open_now = {o.client_order_id for o in second.open_orders()}
        summary = second.health()["recovery"]
    finally:
        second.stop(graceful=False)

    assert tally.refusals == [], tally.refusals[:3]
    spent = weight_by_minute(sim, mark)
    # Looked up one by one (300 × 4) the restart would have broken the limit; the scans answer for the 285 orders they
    # list and only the 15 that changed while the engine was down are looked up: it fits in one minute's budget.
    assert sum(spent.values()) < WEIGHT_LIMIT, spent
    assert summary["orders_to_reconcile"] == 300, summary
    ledger = sim.control.ledger()
    engine_orders = [o for o in ledger["orders"] if str(o["clientOrderId"]).startswith("bx-")]
    assert len(engine_orders) == 300  # nothing placed again, no fallback: every limit has an hour and more left
    for row in engine_orders:
        assert row["status"] == changed.get(str(row["clientOrderId"]), "NEW"), row
    live = {str(o["clientOrderId"]) for o in engine_orders if o["status"] in ("NEW", "PARTIALLY_FILLED")}
    assert open_now == live  # every restored order resolved (closed as the ledger says) or tracked
    _assert_database_equals_ledger(tmp_path, engine_orders, ledger["trades"], changed)


def test_restart_with_300_live_orders_takes_new_orders_at_once(rig: Any, tmp_path: Path) -> None:
    # Found by this test: the restored orders' lookups (300 × weight 4, queued as the pair actors started) took the
    # minute's weight before the root's start-up account read; Engine.start blocked 15 s, the wallet alert fired and
    # new orders were refused (wallet value unknown) for a minute and more. The start's open-orders scans now answer
    # for every order they list: once Engine.start returns, the wallet is valued and a new order is taken.
    sim, exchange_time, _ = rig
    alerts: list[str] = []
    sink = logger.add(lambda m: alerts.append(m.record["extra"]["alert"]), filter=lambda r: "alert" in r["extra"])
    try:
        second, _, _ = _restart(sim, exchange_time, tmp_path)
    finally:
        logger.remove(sink)
    try:
        outcome = second.place_order("BTC/USDT", "buy", "0.0005", "59000").result(timeout=20)
    finally:
        exchange_time.advance(second, 45_000)  # the lookups still queued go out: a stop waits for them otherwise
        second.stop(graceful=False)
    assert "wallet" not in alerts, alerts
    assert isinstance(outcome, Accepted), outcome


def test_restart_with_the_pairs_taken_off_the_whitelist_scans_their_orders_too(rig: Any, tmp_path: Path) -> None:
    # Found in review: the restored orders of pairs no longer whitelisted (tracked by the root, never traded) were
    # still looked up one by one at start and in every round: Engine.start blocked 15 s behind 250 lookups, the
    # wallet alert fired, and four minutes later each minute still spent ~900 weight on them.
    sim, exchange_time, tally = rig
    first = _start(sim, tmp_path)
    try:
        assert len(_place_resting(first)) == 300
        barrier(first)
    finally:
        first.stop(graceful=False)
    now = exchange_time()
    exchange_time.jump_to(now - now % 60_000 + 90_000)
    mark = len(sim.control.requests())
    config = {**_CONFIG, "exchange": {**_CONFIG["exchange"], "pair_whitelist": ["BTC/USDT"]}}
    alerts: list[str] = []
    sink = logger.add(lambda m: alerts.append(m.record["extra"]["alert"]), filter=lambda r: "alert" in r["extra"])
    try:
        second = Engine.start(
            Config.model_validate(config),
            clock=ManualClock(wall_clock_ms()),
            sim=sim,
            database_url=f"sqlite:///{tmp_path}/engine.sqlite3",
            spool_path=tmp_path / "s.jsonl",
        )
    finally:
        logger.remove(sink)
    try:
        outcome = second.place_order("BTC/USDT", "buy", "0.0005", "59000").result(timeout=20)
        for _ in range(3):  # three periodic rounds
            exchange_time.advance(second, 60_000)
            barrier(second)
        lookups = [r for r in sim.control.requests()[mark:] if (r["method"], r["path"]) == ("GET", "/api/v3/order")]
    finally:
        second.stop(graceful=False)
    assert "wallet" not in alerts, alerts
    assert isinstance(outcome, Accepted), outcome
    assert tally.refusals == [], tally.refusals[:3]
    assert len(lookups) <= 10, len(lookups)  # the scans answer for all 300 (nothing changed while it was down)
    spent = weight_by_minute(sim, mark)
    assert max(spent.values()) < WEIGHT_LIMIT // 2, spent


def _assert_database_equals_ledger(
    tmp_path: Path, engine_orders: list[dict[str, Any]], trades: list[dict[str, Any]], changed: dict[str, str]
) -> None:
    handle = connect(f"sqlite:///{tmp_path}/engine.sqlite3")
    try:
        stored: dict[str, Order] = {o.client_order_id: o for o in find_orders(handle)}
        assert set(stored) == {str(o["clientOrderId"]) for o in engine_orders}
        for row in engine_orders:
            order = stored[str(row["clientOrderId"])]
            assert order.status is _LEDGER_STATUS[str(row["status"])], (row, order)
            assert order.filled == Decimal(str(row["executedQty"])), (row, order)
        by_id = {int(o["orderId"]) for o in engine_orders}
        ledger_trades = sorted(int(t["id"]) for t in trades if int(t["orderId"]) in by_id)
        stored_trades = sorted(row[0] for row in FillRow.select(FillRow.trade_id).tuples().execute(handle))
        assert stored_trades == ledger_trades
        ended = {t.request_id: t.status for t in find_trades(handle)}
        by_cid = {str(o.client_order_id): o.request_id for o in stored.values()}
        expected = {by_cid[cid]: status for cid, status in changed.items() if status != "PARTIALLY_FILLED"}
        assert {r: ended.get(r) for r in expected} == {
            r: TradeStatus.FILLED if s == "FILLED" else TradeStatus.CANCELED for r, s in expected.items()
        }
    finally:
        handle.close()
