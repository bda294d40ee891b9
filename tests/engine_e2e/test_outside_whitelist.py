"""Orders of a pair taken off the whitelist between two runs: tracked to their end, never traded.

The first engine trades BTC and ETH; it stops leaving an ETH order live (as a crash would), and the second starts
on the same database with BTC only. The ETH order is still the engine's: its fills are found and stored, and the
periodic reconciliation follows it to its end, but nothing is sent for ETH any more (no cancel at the limit
timeout, no fallback, no re-send). Time is a manual clock shared across the restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from db import BatchWriter, connect, fills_of, get_trade
from engine.api import Accepted, Engine, EventKind
from engine.clock import ManualClock, SystemClock
from engine.config import Config
from engine.domain import Order, OrderRequest, OrderStatus, OrderType, RequestRecord, Side, TradeStatus
from engine.exchange import client_order_id
from sim import SimConfig, Simulator
from tests.engine_e2e.test_engine_sim import Events

NO_STREAMS = {"user_data": False, "market_data": False}
ETH = "ETH/USDT"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig(
        seed=21, symbols=["BTCUSDT", "ETHUSDT"], start_prices={"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    )
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/engine.sqlite3"


@pytest.fixture
def start(sim: Simulator, tmp_path: Path, db_url: str) -> Iterator[Any]:
    engines: list[Engine] = []

    def _start(clock: ManualClock, pairs: list[str]) -> tuple[Engine, Events]:
        config = Config.model_validate(
            {"stream": NO_STREAMS, "exchange": {"pair_whitelist": pairs}, "execution": {"limit_timeout_s": "5"}}
        )
        events = Events()
        engine = Engine.start(
            config, clock=clock, sim=sim, database_url=db_url, spool_path=tmp_path / "spool.jsonl", listeners=[events]
        )
        engines.append(engine)
        return engine, events

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


@pytest.fixture
def alerts() -> Iterator[list[str]]:
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m.record["extra"].get("alert"))), level="CRITICAL", catch=False)
    yield seen
    logger.remove(sink)


def _eth_orders(sim: Simulator) -> list[dict[str, Any]]:
    return [o for o in sim.control.ledger()["orders"] if o["symbol"] == "ETHUSDT"]


def _flush(engine: Engine) -> None:
    engine._root.proxy().store().get(timeout=10).flush().get(timeout=10)


def _read(db_url: str, fn: Any, *args: Any) -> Any:
    handle = connect(db_url)
    try:
        return fn(handle, *args)
    finally:
        handle.close()


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
    second.ticker.advance(10_000)  # past the 5 s limit timeout: a tracked pair is never canceled nor falls back
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


def _write_intent(db_url: str, pair: str, key: str, now_ms: int) -> Order:
    """What the database holds after a crash between the write-ahead and the send."""
    when = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    request = OrderRequest(
        request_id=f"crashed-{key}", pair=pair, side=Side.BUY, amount=Decimal("0.1"), price=Decimal(2900),
        idempotency_key=key, created_at=when, limit_timeout_s=Decimal(60),
    )  # fmt: skip
    order = Order(
        client_order_id=client_order_id(key, pair=pair), request_id=f"crashed-{key}", pair=pair, side=Side.BUY,
        order_type=OrderType.LIMIT, status=OrderStatus.PENDING_SUBMIT, price=Decimal(2900), amount=Decimal("0.1"),
        remaining=Decimal("0.1"), created_at=when, updated_at=when,
    )  # fmt: skip
    handle = connect(db_url)
    try:
        BatchWriter(handle).write([RequestRecord(request=request, reference_price=Decimal(2900)), order])
    finally:
        handle.close()
    return order


def test_an_intent_never_sent_for_a_pair_taken_off_the_whitelist_is_closed_unsent(
    start: Any, sim: Simulator, db_url: str
) -> None:
    clock = ManualClock(SystemClock().now_ms())
    _write_intent(db_url, ETH, "eth-never-sent", clock.now_ms())
    engine, events = start(clock, ["BTC/USDT"])
    for _ in range(40):  # the unknown outcome's lookups, then "never created": a pair actor would re-send it
        if events.of(EventKind.DONE):
            break
        engine.ticker.advance(1_000)
        with events._cond:
            events._cond.wait_for(lambda: bool(events.of(EventKind.DONE)), 0.2)
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.filled == 0
    assert "not sent: the pair is not whitelisted" in done.trade.note
    assert _eth_orders(sim) == []  # never placed: the whitelist no longer allows it


def test_unfinished_orders_of_a_pair_the_exchange_does_not_list_raise_an_alert(
    start: Any, sim: Simulator, db_url: str, alerts: list[str]
) -> None:
    clock = ManualClock(SystemClock().now_ms())
    _write_intent(db_url, "XRP/USDT", "xrp-1", clock.now_ms())
    engine, _ = start(clock, ["BTC/USDT"])
    assert "orders_untracked" in alerts
    assert engine.place_order("BTC/USDT", "buy", "0.01", "59000").result(20) is not None  # trading goes on
