"""Row building for `BatchWriter`: each table's column order and each record's driver-ready tuple.

`RowBuilder` is mixed into `BatchWriter`, which sets the per-driver converters (`_dec`, `_dec1`, `_ts`) in its
constructor; the column lists here are also what its SQL is generated from, so a row's tuple and its statement's
placeholders always agree.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from db._fields import decimal_to_text, json_map, utc_to_text
from engine.domain import (
    NAMED_INDICATORS,
    ErrorRecord,
    Fill,
    IndicatorSnapshot,
    Order,
    RequestRecord,
    Trade,
)

__all__ = ["RowBuilder"]

_ORDER_COLS = [
    "client_order_id",
    "exchange",
    "exchange_order_id",
    "request_id",
    "pair",
    "side",
    "order_type",
    "time_in_force",
    "role",
    "parent_client_order_id",
    "status",
    "price",
    "amount",
    "filled",
    "remaining",
    "quote_filled",
    "average_price",
    "fees",
    "created_at",
    "updated_at",
    "last_trade_id",
    "slippage_capped",
    "exchange_client_order_id",
    "amended_amount",
]
_FILL_COLS = [
    "exchange",
    "symbol",
    "trade_id",
    "pair",
    "client_order_id",
    "exchange_order_id",
    "side",
    "price",
    "quantity",
    "quote_quantity",
    "commission",
    "commission_asset",
    "is_maker",
    "time",
]
_TRADE_COLS = [
    "request_id",
    "pair",
    "side",
    "requested",
    "filled",
    "average_price",
    "fees",
    "status",
    "strategy",
    "timeframe",
    "created_at",
    "closed_at",
    "remainder",
    "dust",
    "note",
    "rsi",
    "ewo",
    "ema",
    "sma",
    "indicators",
]
_ERROR_COLS = ["key", "operation", "exchange_code", "message", "context", "pair", "client_order_id", "time"]
_SNAPSHOT_COLS = ["key", "request_id", "pair", "timeframe", "time", "values"]
_REQUEST_COLS = [
    "request_id",
    "idempotency_key",
    "exchange",
    "pair",
    "payload",
    "reference_price",
    "created_at",
    "canceled",
    "fallback_retry",
    "fallback_retry_at",
]


_FILL_GET = attrgetter(*_FILL_COLS)
_ORDER_GET = attrgetter(*_ORDER_COLS)


class RowBuilder:
    """Mixed into `BatchWriter`: one driver-ready tuple per record, in its table's column order."""

    _sqlite: bool
    _dec: Callable[[Decimal | None], Any]
    _dec1: Callable[[Decimal], Any]
    _ts: Callable[[datetime | None], Any]

    @staticmethod
    def _sqlite_dec(value: Decimal | None) -> str | None:
        return None if value is None else decimal_to_text(value)

    @staticmethod
    def _sqlite_ts(value: datetime | None) -> str | None:
        return None if value is None else utc_to_text(value)

    def _order_row(self, o: Order) -> tuple[Any, ...]:
        # One C-level attrgetter for the 24 columns (enums bound as their text, as for fills), then only the
        # decimals, the fee map and the times converted.
        r = _ORDER_GET(o)
        d, t = self._dec, self._ts
        return (
            *r[:11],
            d(r[11]),
            self._dec1(r[12]),
            self._dec1(r[13]),
            self._dec1(r[14]),
            self._dec1(r[15]),
            d(r[16]),
            json_map(r[17]),
            t(r[18]),
            t(r[19]),
            r[20],
            r[21],
            r[22],
            d(r[23]),
        )

    def _fill_row(self, f: Fill) -> tuple[Any, ...]:
        # The hot path. One C-level attrgetter call; both drivers bind StrEnum values as text, and
        # PostgreSQL takes Decimal and aware datetimes natively (the session zone is UTC).
        row = _FILL_GET(f)
        if not self._sqlite:
            return row
        text = decimal_to_text
        return (
            *row[:7],
            text(row[7]),
            text(row[8]),
            text(row[9]),
            text(row[10]),
            row[11],
            row[12],
            utc_to_text(row[13]),
        )

    def _trade_row(self, tr: Trade) -> tuple[Any, ...]:
        d, t = self._dec, self._ts
        named = [d(tr.indicators.get(name)) for name in NAMED_INDICATORS]
        return (
            tr.request_id,
            tr.pair,
            tr.side.value,
            d(tr.requested),
            d(tr.filled),
            d(tr.average_price),
            json_map(tr.fees),
            tr.status.value,
            tr.strategy,
            tr.timeframe,
            t(tr.created_at),
            t(tr.closed_at),
            d(tr.remainder),
            tr.dust,
            tr.note,
            *named,
            json_map(tr.indicators),
        )

    def _error_row(self, key: str, e: ErrorRecord) -> tuple[Any, ...]:
        return (
            key,
            e.operation,
            e.exchange_code,
            e.message,
            json_map(e.context),
            e.pair,
            e.client_order_id,
            self._ts(e.time),
        )

    def _request_row(self, r: RequestRecord) -> tuple[Any, ...]:
        q = r.request
        payload = q.model_dump_json()
        return (q.request_id, q.idempotency_key, r.exchange, q.pair, payload, self._dec(r.reference_price),
                self._ts(q.created_at), r.canceled, r.fallback_retry, self._ts(r.fallback_retry_at))  # fmt: skip

    def _snapshot_row(self, key: str, s: IndicatorSnapshot) -> tuple[Any, ...]:
        return (key, s.request_id, s.pair, s.timeframe, self._ts(s.time), json_map(s.values))


def _identity(value: Any) -> Any:
    return value


def _naive_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)
