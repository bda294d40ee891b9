"""The persistence benchmark's write-ahead phase: the batch an order's create commits, and its raw floor.

Used by `bench/persistence.py`: `write_ahead_batches` times the batch (new RequestRecord + Order intent, plus the
previous order's updated Order, its Trade and one Fill) through `BatchWriter.write` and through the actor's
`write_ahead`; `raw_single_commit` times the raw driver's single-row INSERT + COMMIT floor next to it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import statistics
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
from _persistence_floor import FILL_COLS, T0, make_fills, raw_rows

from actors.persistence import PersistenceSettings, start_persistence
from db import BatchWriter, Record, connect
from engine.domain import (
    ClientOrderId,
    ExchangeOrderId,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    Pair,
    RequestId,
    RequestRecord,
    Side,
    Symbol,
    Trade,
    TradeId,
    TradeStatus,
)

__all__ = ["raw_single_commit", "write_ahead_batches"]


def _wa_intent(i: int) -> tuple[RequestRecord, Order]:
    """Request `i` and its order's intent, with ids shaped like the engine's (hashes, so index keys scatter)."""
    at = T0 + timedelta(seconds=i)
    price, amount = Decimal("50000.01"), Decimal("0.00150000")
    request = OrderRequest(
        request_id=RequestId(hashlib.md5(f"r{i}".encode()).hexdigest()),
        pair=Pair("BTC/USDT"), side=Side.BUY, amount=amount, price=price,
        idempotency_key=hashlib.sha1(f"k{i}".encode()).hexdigest(),
        created_at=at,
    )  # fmt: skip
    order = Order(
        client_order_id=ClientOrderId("x-" + hashlib.sha1(f"c{i}".encode()).hexdigest()[:26] + "-p"),
        request_id=request.request_id, pair=request.pair, side=Side.BUY, order_type="limit",
        status=OrderStatus.PENDING_SUBMIT, price=price, amount=amount, created_at=at, updated_at=at,
    )  # fmt: skip
    return RequestRecord(request=request, reference_price=price), order


def _wa_followups(i: int) -> list[Record]:
    """Order `i` after its fill: the updated Order, its Trade and the Fill."""
    _, order = _wa_intent(i)
    at = order.created_at + timedelta(milliseconds=300)
    fees = {"BNB": Decimal("0.0000075")}
    quote = Decimal("75.000015")
    done = order.model_copy(update={
        "status": OrderStatus.FILLED, "exchange_order_id": ExchangeOrderId(10_000_000 + i), "filled": order.amount,
        "remaining": Decimal(0), "quote_filled": quote, "average_price": order.price, "fees": fees,
        "updated_at": at, "last_trade_id": TradeId(5_000_000 + i),
    })  # fmt: skip
    trade = Trade(
        request_id=order.request_id, pair=order.pair, side=order.side, requested=order.amount, filled=order.amount,
        average_price=order.price, fees=fees, status=TradeStatus.FILLED, strategy="rsi_dip", timeframe="5m",
        indicators={"rsi": Decimal("28.5"), "ewo": Decimal("-1.2")}, created_at=order.created_at, closed_at=at,
    )  # fmt: skip
    fill = Fill(
        symbol=Symbol("BTCUSDT"), pair=order.pair, trade_id=TradeId(5_000_000 + i),
        client_order_id=order.client_order_id, exchange_order_id=ExchangeOrderId(10_000_000 + i), side=order.side,
        price=Decimal("50000.01"),
        quantity=order.amount, quote_quantity=quote, commission=fees["BNB"], commission_asset="BNB", is_maker=True,
        time=at,
    )  # fmt: skip
    return [done, trade, fill]


def _pcts(seconds: list[float]) -> tuple[float, float]:  # float-ok: durations
    us = sorted(s * 1e6 for s in seconds)
    return statistics.median(us), us[min(len(us) - 1, int(len(us) * 0.99))]


def raw_single_commit(url: str, samples: int) -> tuple[float, float]:
    """p50, p99 in µs of the raw driver's one-row INSERT + COMMIT into `fills` (same file/server, same pragmas)."""
    rows = raw_rows(make_fills(samples, start=10_000_000), url.startswith("sqlite"))
    times = []
    if url.startswith("sqlite"):
        conn = sqlite3.connect(urlsplit(url).path[1:], isolation_level=None)
        conn.execute("PRAGMA journal_mode=wal")
        conn.execute("PRAGMA synchronous=full")
        sql = f"INSERT INTO fills ({FILL_COLS}) VALUES ({', '.join('?' * 14)})"
        for row in rows:
            started = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute(sql, row)
            conn.execute("COMMIT")
            times.append(time.perf_counter() - started)
        conn.close()
        return _pcts(times)
    pg = psycopg2.connect(url)
    sql = f"INSERT INTO fills ({FILL_COLS}) VALUES ({', '.join(['%s'] * 14)})"
    with pg.cursor() as cur:
        for row in rows:
            started = time.perf_counter()
            cur.execute(sql, row)
            pg.commit()
            times.append(time.perf_counter() - started)
    pg.close()
    return _pcts(times)


def write_ahead_batches(url: str, samples: int, spool: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    """p50, p99 in µs of committing the write-ahead batch: via `BatchWriter.write`, then via the actor.

    Each sample is what an order's create waits for: its RequestRecord and Order intent, committed together
    with the previous order's follow-up rows (updated Order, Trade, Fill) told before it. Both runs start after
    `samples` warm-up orders, so the tables and indexes are not empty.
    """
    db = connect(url)
    writer = BatchWriter(db)
    direct = []
    for i in range(2 * samples):
        batch = [*(_wa_followups(i - 1) if i else []), *_wa_intent(i)]
        started = time.perf_counter()
        writer.write(batch)
        direct.append(time.perf_counter() - started)
    db.close()
    handle = start_persistence(url, spool, settings=PersistenceSettings(batch_size=500))
    handle.proxy.health().get(timeout=60)
    via_actor = []
    for i in range(2 * samples, 3 * samples):
        request, intent = _wa_intent(i)
        handle.save_many([*_wa_followups(i - 1), request])
        started = time.perf_counter()
        handle.write_ahead(intent).get(timeout=60)
        via_actor.append(time.perf_counter() - started)
    handle.stop()
    return _pcts(direct[samples:]), _pcts(via_actor)
