"""The persistence benchmark's synthetic fills and its batched floor: the raw driver inserting the same rows.

Used by `bench/persistence.py`: `make_fills` makes the fills every phase writes; `raw_rows` turns them into the
driver's rows and `raw_insert` times psycopg2 execute_values / sqlite3 executemany on them (same batch size,
same pragmas as the actor).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import psycopg2
from psycopg2.extras import execute_values

from db._fields import decimal_to_text, utc_to_text
from engine.domain import ClientOrderId, ExchangeOrderId, Fill, Pair, Side, Symbol, TradeId

__all__ = ["FILL_COLS", "PAIRS", "T0", "make_fills", "raw_insert", "raw_rows"]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PAIRS = ["BTC/USDT", "ETH/USDT", "BNB/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT", "ETH/BTC", "DOGE/USDT"]
FILL_COLS = (
    "exchange, symbol, trade_id, pair, client_order_id, exchange_order_id, side, price, quantity, "
    "quote_quantity, commission, commission_asset, is_maker, time"
)


def make_fills(n: int, start: int = 0, orders: int = 1000) -> list[Fill]:
    fills = []
    for i in range(start, start + n):
        pair = PAIRS[i % len(PAIRS)]
        price = Decimal(20000 + i % 1000) + Decimal("0.01")
        qty = Decimal("0.00100000") + Decimal(i % 97) / Decimal(100000)
        fills.append(
            Fill(
                symbol=Symbol(pair.replace("/", "")),
                pair=Pair(pair),
                trade_id=TradeId(i + 1),
                client_order_id=ClientOrderId(f"c{i % orders}"),
                exchange_order_id=ExchangeOrderId(i % orders + 1),
                side=Side.BUY if i % 2 else Side.SELL,
                price=price,
                quantity=qty,
                quote_quantity=price * qty,
                commission=Decimal("0.0000075"),
                commission_asset="BNB",
                is_maker=bool(i % 3),
                time=T0 + timedelta(milliseconds=i),
            )
        )
    return fills


def raw_rows(fills: Sequence[Fill], sqlite: bool) -> list[tuple[Any, ...]]:
    dec: Callable[[Decimal], Any] = decimal_to_text if sqlite else (lambda d: d)
    ts: Callable[[datetime], Any] = utc_to_text if sqlite else (lambda t: t.replace(tzinfo=None))
    return [
        (
            f.exchange,
            f.symbol,
            f.trade_id,
            f.pair,
            f.client_order_id,
            f.exchange_order_id,
            f.side.value,
            dec(f.price),
            dec(f.quantity),
            dec(f.quote_quantity),
            dec(f.commission),
            f.commission_asset,
            f.is_maker,
            ts(f.time),
        )
        for f in fills
    ]


def raw_insert(url: str, rows: list[tuple[Any, ...]], batch: int) -> float:
    """Seconds for the raw driver to insert `rows`, `batch` per transaction."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(urlsplit(url).path[1:], isolation_level=None)
        conn.execute("PRAGMA journal_mode=wal")
        conn.execute("PRAGMA synchronous=full")
        sql = f"INSERT INTO fills ({FILL_COLS}) VALUES ({', '.join('?' * 14)})"
        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            conn.execute("BEGIN")
            conn.executemany(sql, rows[i : i + batch])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.execute("DELETE FROM fills")
        conn.close()
        return elapsed
    pg = psycopg2.connect(url)
    sql = f"INSERT INTO fills ({FILL_COLS}) VALUES %s"
    started = time.perf_counter()
    with pg.cursor() as cur:
        for i in range(0, len(rows), batch):
            execute_values(cur, sql, rows[i : i + batch], page_size=batch)
            pg.commit()
    elapsed = time.perf_counter() - started
    with pg.cursor() as cur:
        cur.execute("TRUNCATE fills")
    pg.commit()
    pg.close()
    return elapsed
