"""Row ↔ domain mapping. Pure functions; rows carry no logic."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from engine.domain import (
    ErrorRecord,
    Fill,
    IndicatorSnapshot,
    Order,
    OrderRequest,
    RequestRecord,
    Trade,
)

Record = Order | Fill | Trade | ErrorRecord | IndicatorSnapshot | RequestRecord
"""Anything the persistence layer stores."""


def content_key(record: ErrorRecord | IndicatorSnapshot) -> str:
    """Deterministic digest of an append-only record: its natural key, so a replay stores it once."""
    return hashlib.sha256(record.model_dump_json().encode()).hexdigest()


_ROW_ONLY = frozenset({"id", "key", "rsi", "ewo", "ema", "sma"})
"""Columns that exist for storage (surrogate key, digest, indexed copies of indicators), not in the domain."""


def _fields(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _ROW_ONLY}


# Rows are fetched as dicts (`query.dicts()`): column names equal the domain field names, and pydantic
# validates every value on the way out too (JSON decimals arrive as exact strings).


def order_from_row(row: Mapping[str, Any]) -> Order:
    """Build the domain `Order` stored in `row`."""
    return Order.model_validate(_fields(row))


def fill_from_row(row: Mapping[str, Any]) -> Fill:
    """Build the domain `Fill` stored in `row`."""
    return Fill.model_validate(_fields(row))


def trade_from_row(row: Mapping[str, Any]) -> Trade:
    """Build the domain `Trade` stored in `row`."""
    return Trade.model_validate(_fields(row))


def error_from_row(row: Mapping[str, Any]) -> ErrorRecord:
    """Build the domain `ErrorRecord` stored in `row`."""
    return ErrorRecord.model_validate(_fields(row))


def snapshot_from_row(row: Mapping[str, Any]) -> IndicatorSnapshot:
    """Build the domain `IndicatorSnapshot` stored in `row`."""
    return IndicatorSnapshot.model_validate(_fields(row))


def request_from_row(row: Mapping[str, Any]) -> RequestRecord:
    """Build the stored `RequestRecord` of a `requests` row."""
    return RequestRecord(
        request=OrderRequest.model_validate_json(row["payload"]),
        reference_price=row.get("reference_price"),
        exchange=row["exchange"],
        canceled=row.get("canceled"),
        fallback_retry=row.get("fallback_retry"),
        fallback_retry_at=row.get("fallback_retry_at"),
    )
