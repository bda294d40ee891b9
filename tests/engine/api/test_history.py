"""`History`: an engine's orders, fills and trades read from Python without starting an engine.

Found by a strategy author: reading history from Python meant `Engine.start()` (the database lock, a simulator,
every actor), so a notebook could not read while the strategy ran (`DatabaseInUseError`); fills had no query at
all. `History` reads as the CLI does: no lock, no migration, no file created.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from db import BatchWriter, StorageError, acquire_instance_lock, connect
from engine.api import History
from engine.domain import OrderStatus, TradeStatus
from tests.db import _records as rec


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    database = connect(url)
    try:
        filled = rec.progressed(rec.order("b"), Decimal("0.5"), OrderStatus.FILLED)
        BatchWriter(database).write([rec.order("a"), filled, rec.fill(7, "b"), rec.fill(8, "b"),
                                     rec.trade("r-1"), rec.trade("r-2", status=TradeStatus.PARTIAL)])  # fmt: skip
    finally:
        database.close()
    return url


def test_history_reads_orders_fills_and_trades_while_an_engine_holds_the_database(url: str) -> None:
    lock = acquire_instance_lock(url)  # as a running engine holds it
    try:
        with History.open(url) as history:
            assert [o.client_order_id for o in history.orders(status="open-any")] == ["a"]
            assert sorted(o.client_order_id for o in history.orders()) == ["a", "b"]
            assert [f.trade_id for f in history.fills(client_order_id="b")] == [7, 8]
            with pytest.raises(ValueError, match="not both"):  # a filter it would ignore is refused
                history.fills(client_order_id="b", pair="BTC/USDT")
            assert len(history.fills(since="2000-01-01")) == 2
            assert [t.request_id for t in history.trades(status="partial")] == ["r-2"]
            assert history.trades(since=datetime(2000, 1, 1, tzinfo=UTC), limit=1)
            with pytest.raises(ValueError, match="a datetime without a time zone is ambiguous"):
                history.trades(since=datetime(2000, 1, 1))  # noqa: DTZ001 - the naive datetime under test
    finally:
        lock.release()


def test_history_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite3"
    with pytest.raises(StorageError, match="no SQLite database file at"):
        History.open(f"sqlite:///{missing}")
    assert not missing.exists()
