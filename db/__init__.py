"""Storage: peewee tables, exact-decimal fields, database URLs and connections, migrations, batched
idempotent writes and the queries that return domain types.

Usage: `db = connect("sqlite:///data/bexec.sqlite")` (opens, migrates) in the thread that will own the
connection, then `BatchWriter(db).write(records)` and the query functions (`open_orders(db)`, ...).
"""

from db._errors import (
    BAD_RECORD_ERRORS,
    DatabaseAuthError,
    DatabaseSchemaError,
    DatabaseUnavailableError,
    DatabaseUrlError,
    StorageError,
    is_bad_record,
    is_transient,
)
from db._fields import ExactDecimalField, JsonMapField, UtcDateTimeField, decimal_to_text
from db._lock import DatabaseInUseError, InstanceLock, LockUnavailableError, acquire_instance_lock
from db._mapping import Record, content_key
from db._migrations import LATEST_VERSION, MIGRATIONS, Migration, current_version, migrate
from db._models import MODELS, ErrorRow, FillRow, OrderRow, RequestRow, SchemaVersionRow, SnapshotRow, TradeRow
from db._recovery import RecoveryState, idempotency_keys, load_recovery, request_of
from db._repository import (
    FillGap,
    IndicatorRange,
    children_of,
    count,
    fill_gaps,
    fills_of,
    find_errors,
    find_fills,
    find_orders,
    find_trades,
    get_order,
    get_trade,
    open_orders,
    snapshots_of,
)
from db._url import (
    DatabaseUrl,
    SecretUrl,
    connect,
    make_database,
    mask_url,
    open_connection,
    parse_url,
    with_password,
)
from db._writer import (
    BatchWriter,
    WriteStats,
    order_supersedes,
    register_sqlite_functions,
    request_merged,
    trade_supersedes,
)

__all__ = [
    "BAD_RECORD_ERRORS",
    "LATEST_VERSION",
    "MIGRATIONS",
    "MODELS",
    "BatchWriter",
    "DatabaseAuthError",
    "DatabaseInUseError",
    "DatabaseSchemaError",
    "DatabaseUnavailableError",
    "DatabaseUrl",
    "DatabaseUrlError",
    "ErrorRow",
    "ExactDecimalField",
    "FillGap",
    "FillRow",
    "IndicatorRange",
    "InstanceLock",
    "JsonMapField",
    "LockUnavailableError",
    "Migration",
    "OrderRow",
    "Record",
    "RecoveryState",
    "RequestRow",
    "SchemaVersionRow",
    "SecretUrl",
    "SnapshotRow",
    "StorageError",
    "TradeRow",
    "UtcDateTimeField",
    "WriteStats",
    "acquire_instance_lock",
    "children_of",
    "connect",
    "content_key",
    "count",
    "current_version",
    "decimal_to_text",
    "fill_gaps",
    "fills_of",
    "find_errors",
    "find_fills",
    "find_orders",
    "find_trades",
    "get_order",
    "get_trade",
    "idempotency_keys",
    "is_bad_record",
    "is_transient",
    "load_recovery",
    "make_database",
    "mask_url",
    "migrate",
    "open_connection",
    "open_orders",
    "order_supersedes",
    "parse_url",
    "register_sqlite_functions",
    "request_merged",
    "request_of",
    "snapshots_of",
    "trade_supersedes",
    "with_password",
]
