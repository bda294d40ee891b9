"""`Engine.orders(status=...)` and `trades(status=...)` take a status as `place_order` takes its enum arguments: the
member or its value in any letter case, one or several; an unknown one is a ValueError listing the valid values.
A string raised `AttributeError: 'str' object has no attribute 'value'` in the database query (scale review).
The facade runs over a store that answers from a real database (`db.find_orders`, `db.find_trades`)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import peewee
import pytest

from db import BatchWriter, connect, find_orders, find_trades
from engine.api._queries import EngineQueries
from engine.clock import ManualClock
from engine.domain import OrderStatus, TradeStatus
from tests.db import _records as rec


class _Answer:
    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self, timeout: float | None = None) -> Any:
        return self.value


class _Store:
    def __init__(self, database: peewee.Database) -> None:
        self.database = database

    def find_orders(self, **filters: Any) -> _Answer:
        return _Answer(find_orders(self.database, **filters))

    def find_trades(self, **filters: Any) -> _Answer:
        return _Answer(find_trades(self.database, **filters))


class _Facade(EngineQueries):
    def __init__(self, database: peewee.Database) -> None:
        self._stopped = False
        self.clock = ManualClock(1_767_225_600_000)  # 2026-01-01T00:00Z
        self.database = database
        self._require_running = lambda _what: None
        self._store = lambda: _Store(database)  # type: ignore[method-assign,assignment,return-value]


@pytest.fixture
def engine(tmp_path: Any) -> Iterator[_Facade]:
    database = connect(f"sqlite:///{tmp_path}/q.sqlite3")
    open_order = rec.order("a")
    filled = rec.progressed(rec.order("b"), Decimal("0.5"), OrderStatus.FILLED)
    trades = [rec.trade("r-1"), rec.trade("r-2", status=TradeStatus.PARTIAL)]
    BatchWriter(database).write([open_order, filled, *trades])
    yield _Facade(database)
    database.close()


@pytest.mark.parametrize("status", ["open", "OPEN", "Open", OrderStatus.OPEN, ["open"], ("OPEN", OrderStatus.OPEN)])
def test_orders_take_a_status_in_any_letter_case_or_as_the_member(engine: _Facade, status: Any) -> None:
    assert [o.client_order_id for o in engine.orders(status=status)] == ["a"]


def test_orders_take_several_statuses(engine: _Facade) -> None:
    assert sorted(o.client_order_id for o in engine.orders(status=["filled", OrderStatus.OPEN])) == ["a", "b"]


@pytest.mark.parametrize("status", ["partial", "PARTIAL", TradeStatus.PARTIAL, {"Partial"}])
def test_trades_take_a_status_in_any_letter_case_or_as_the_member(engine: _Facade, status: Any) -> None:
    assert [t.request_id for t in engine.trades(status=status)] == ["r-2"]


@pytest.mark.parametrize(
    ("query", "valid"), [("orders", "pending_submit, submitted, open"), ("trades", "open, filled")]
)
def test_an_unknown_status_is_refused_with_the_valid_values(engine: _Facade, query: str, valid: str) -> None:
    with pytest.raises(ValueError, match="status: 'opened' is not one of") as info:
        getattr(engine, query)(status="opened")
    assert valid in str(info.value) and "any letter case" in str(info.value)


def test_the_database_query_takes_strings_too(engine: _Facade) -> None:
    database = engine.database
    assert [o.client_order_id for o in find_orders(database, status="FILLED")] == ["b"]
    assert [t.request_id for t in find_trades(database, status=["Partial"])] == ["r-2"]
    with pytest.raises(ValueError, match="not one of open, filled, partial"):
        find_trades(database, status="done")


def test_orders_take_open_any_as_the_cli_and_api_do(engine: _Facade) -> None:
    # Found by a strategy author: the CLI, the control API and the docs offer "open-any"; Python raised ValueError.
    assert [o.client_order_id for o in engine.orders(status="open-any")] == ["a"]
    assert sorted(o.client_order_id for o in engine.orders(status=["open-any", "filled"])) == ["a", "b"]


@pytest.mark.parametrize("query", ["orders", "trades"])
def test_a_naive_datetime_is_refused_clearly_and_strings_are_read_as_the_cli_reads_them(
    engine: _Facade, query: str
) -> None:
    # Found by a strategy author: `trades(since=datetime.now() - timedelta(hours=1))` failed deep in the database
    # with "refusing to store naive datetime" (this is a read), and `since="1h"` with an AttributeError.
    from datetime import UTC, datetime

    with pytest.raises(ValueError, match="since: a datetime without a time zone is ambiguous"):
        getattr(engine, query)(since=datetime(2026, 1, 1))  # noqa: DTZ001 - the naive datetime under test
    with pytest.raises(ValueError, match="until: invalid 'yesterday'"):
        getattr(engine, query)(until="yesterday")
    everything = getattr(engine, query)()
    assert getattr(engine, query)(since=datetime(2000, 1, 1, tzinfo=UTC)) == everything
    assert getattr(engine, query)(since="2000-01-01") == everything
    assert getattr(engine, query)(since="1000w") == everything  # an age before the injected clock's now
    assert getattr(engine, query)(until="1000w") == []


def test_a_status_filter_given_as_a_generator_or_open_any_in_any_case_filters_as_a_list(engine: _Facade) -> None:
    # Found in a diff review: a generator was consumed by the open-any check, then filtered on nothing (no rows).
    assert [o.client_order_id for o in engine.orders(status=(s for s in ["filled"]))] == ["b"]
    assert [o.client_order_id for o in engine.orders(status="OPEN-ANY")] == ["a"]
    assert [t.request_id for t in engine.trades(status=(s for s in ["partial"]))] == ["r-2"]
