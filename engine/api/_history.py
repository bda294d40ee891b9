"""Reading an engine's history without starting an engine: `History`, over the database the engine writes.

An `Engine` takes its database's lock for its whole life, so a notebook cannot start a second one on the database
a daemon runs on; this reads it as the CLI's ``orders``/``trades`` do: no lock, no migration, no file created.
Rows are those committed: a running engine commits within `database.batch_interval_ms`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import peewee

from engine.api._queries import _moment, order_filters, trade_filters
from engine.domain import Fill, Order, OrderStatus, Trade, TradeStatus

__all__ = ["History"]


class History:
    """Read-only queries of an engine's database (orders, fills, trades), safe while the engine runs.

    ```python
    with History.open("sqlite:///data/engine.sqlite3") as history:
        for trade in history.trades(since="1d", strategy="rsi-dip"):
            print(trade.pair, trade.status, trade.filled, trade.average_price)
    ```

    One thread at a time (its connection is its own). Statuses and times are taken as `Engine.orders` and
    `Engine.trades` take them: a status or its value in any letter case ("open-any": every status not terminal), an
    aware datetime or a string (an ISO time, UTC without a zone, or an age: "30m", "12h", "7d").
    """

    def __init__(self, database: peewee.Database) -> None:
        self._db = database

    @classmethod
    def open(cls, database_url: str) -> History:
        """Open the database at `database_url` for reading (a `Config`'s: `config.database.connection_url()`).

        Raises:
            db.StorageError: no SQLite file there, a schema other than this version's, or (as
                `DatabaseUnavailableError`) a server that cannot be reached.
        """
        from db.cli import open_for_reading

        return cls(open_for_reading(database_url))

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def orders(
        self,
        *,
        pair: str | None = None,
        status: OrderStatus | str | Iterable[OrderStatus | str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        request_id: str | None = None,
        limit: int | None = None,
    ) -> list[Order]:
        """Stored orders, newest first, filtered by pair, status(es), creation time [since, until), request."""
        from db import find_orders

        filters = order_filters(datetime.now(UTC), pair, status, since, until, request_id, limit)
        return find_orders(self._db, **filters, newest_first=True)

    def trades(
        self,
        *,
        pair: str | None = None,
        status: TradeStatus | str | Iterable[TradeStatus | str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        strategy: str | None = None,
        timeframe: str | None = None,
        indicators: Mapping[str, tuple[Any, Any]] | None = None,
        limit: int | None = None,
    ) -> list[Trade]:
        """Stored trades (one per request), newest first; `indicators` maps a name to (low, high): low <= v < high."""
        from db import find_trades

        filters = trade_filters(datetime.now(UTC), pair, status, since, until, strategy, timeframe, indicators, limit)
        return find_trades(self._db, **filters, newest_first=True)

    def fills(
        self,
        *,
        client_order_id: str | None = None,
        pair: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
    ) -> list[Fill]:
        """Stored fills: one order's (by client order id, in trade id order), or by pair and execution time."""
        from db import fills_of, find_fills

        if client_order_id is not None:
            if any(v is not None for v in (pair, since, until, limit)):
                raise ValueError("fills: client_order_id names one order's fills; pair, since, until and limit are "
                                 "the other way to ask (not both)")  # fmt: skip
            return fills_of(self._db, client_order_id)
        now = datetime.now(UTC)
        return find_fills(self._db, pair=pair, since=_moment("since", since, now), until=_moment("until", until, now),
                          limit=limit)  # fmt: skip
