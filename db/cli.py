"""`run.py orders` and `run.py trades`: stored orders and trades as tables (or JSON lines).

The lead's CLI resolves `args.database_url` from the configuration and calls `run_orders(args)` /
`run_trades(args)`. Light on purpose: no ccxt, no actors; a short-lived connection of its own (a separate
process from the engine, so the engine's persistence actor still owns its connection). Read-only: it neither
creates nor migrates a database, and refuses one whose schema version is not this code's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO, TypeVar

import orjson
import peewee

from db._errors import DatabaseSchemaError, DatabaseUnavailableError, StorageError
from db._migrations import LATEST_VERSION, current_version, refuse_newer_schema
from db._repository import find_orders, find_trades
from db._url import connect, parse_url
from engine.domain import OrderStatus, TradeStatus
from engine.service._plain import jsonable, plain_decimal

__all__ = [
    "MAX_LIMIT",
    "add_orders_arguments",
    "add_trades_arguments",
    "open_for_reading",
    "parse_limit",
    "parse_pair_arg",
    "parse_since",
    "render_table",
    "run_orders",
    "run_trades",
]

_T = TypeVar("_T")

# The CLI's exit codes (`engine.service._commands`, not imported: this module stays light): 2 for what the operator
# must fix (usage, a missing file, the schema), 5 for what cannot be reached (a database server that is down).
EXIT_INVALID, EXIT_UNREACHABLE = 2, 5

# The control API's bound on `limit` (`engine.service._schemas.MAX_LIMIT`), not imported: this module stays light.
MAX_LIMIT = 1000
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`--since` value: an ISO date/time (UTC if no zone) or a relative age such as 30m, 12h, 7d."""
    text = text.strip()
    try:
        if text and text[-1] in _UNITS and text[:-1].isdigit():
            return (now or datetime.now(UTC)) - timedelta(**{_UNITS[text[-1]]: int(text[:-1])})
        value = datetime.fromisoformat(text)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid --since {text!r}: use an ISO time (2026-01-31T12:00) or an age (30m, 12h, 7d)"
        ) from None
    except OverflowError:
        # An age reaching before year 1, or a time that is before year 1 or after 9999 in UTC: argparse reports
        # only ArgumentTypeError (and ValueError) as a usage error, anything else is a traceback.
        raise argparse.ArgumentTypeError(f"{text!r} is outside the years 1 to 9999 (UTC)") from None


def parse_pair_arg(text: str) -> str:
    """`--pair` as stored (`BTC/USDT`) from any spelling the control API takes (`btc-usdt`, `BTC_USDT`); an
    unreadable one is refused (an exact match on another spelling found nothing, silently)."""
    pair = text.strip().upper().replace("-", "/").replace("_", "/")
    if pair.count("/") != 1 or not all(part.isalnum() for part in pair.split("/")):
        raise argparse.ArgumentTypeError(f"a pair is BASE/QUOTE, e.g. BTC/USDT: {text!r}")
    return pair


def parse_limit(text: str) -> int:
    """`--limit`: 1 to `MAX_LIMIT`, the control API's bound. A negative LIMIT is "no limit" on SQLite and an error on
    PostgreSQL, and 0 printed nothing: both are refused as usage errors."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_LIMIT}: {text!r}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pair", type=parse_pair_arg, help='only this pair, e.g. "BTC/USDT"')
    parser.add_argument("--since", type=parse_since, help="created at or after: ISO time or age (30m, 12h, 7d)")
    parser.add_argument("--until", type=parse_since, help="created before: ISO time or age (30m, 12h, 7d)")
    parser.add_argument(
        "--limit",
        type=parse_limit,
        default=50,
        help=f"at most this many rows (1-{MAX_LIMIT}), newest first (default 50)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")


def add_orders_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `orders` filters to `parser`."""
    _common(parser)
    parser.add_argument(
        "--status",
        action="append",
        choices=[s.value for s in OrderStatus] + ["open-any"],
        help="only these statuses (repeatable or comma-separated); open-any = every non-terminal status",
    )
    parser.add_argument("--request-id", help="only the orders of this request (its primary and fallbacks)")


def add_trades_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `trades` filters to `parser`."""
    _common(parser)
    parser.add_argument(
        "--status", action="append", choices=[s.value for s in TradeStatus], help="repeatable or comma-separated"
    )
    parser.add_argument("--timeframe", help='only this timeframe, e.g. "5m"')
    parser.add_argument("--strategy", help="only this strategy")


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f").rstrip("0")
    if isinstance(value, dict):
        return ",".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "-"
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]], out: TextIO) -> None:
    """Plain aligned text table."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _read(args: argparse.Namespace, query: Callable[..., list[_T]], **filters: Any) -> list[_T] | int:
    """Run one repository query on a short-lived connection; the exit code (and a message) if the database fails:
    `EXIT_UNREACHABLE` when it cannot be reached (the code the client commands use for an unreachable daemon), else
    `EXIT_INVALID` (a missing SQLite file, a malformed URL, refused credentials, a schema other than this code's).

    Reads only: never creates a SQLite file, never migrates. A mistyped path used to get a new empty database
    ("0 order(s)"), and a newer CLI migrated the database an older engine was running on, which that engine then
    could not write to. A schema other than the one this code knows is refused, since its queries assume it.
    """
    try:
        db = open_for_reading(args.database_url)
        try:
            return query(db, **filters)
        finally:
            db.close()
    except StorageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_UNREACHABLE if isinstance(exc, DatabaseUnavailableError) else EXIT_INVALID


def open_for_reading(url: str) -> peewee.Database:
    """A connection to read an engine's database without changing it: never creates a SQLite file, never migrates,
    takes no lock (safe while an engine runs on it).

    Raises:
        StorageError: no SQLite file there, or a schema other than this code's (`DatabaseUnavailableError` when
            the server cannot be reached).
    """
    spec = parse_url(url)
    if spec.backend == "sqlite" and not Path(spec.path).is_file():
        raise StorageError(
            f"no SQLite database file at {spec.path} ({spec.masked()}): check database.url (the engine creates "
            "the file when it first starts)"
        )
    db = connect(url, apply_migrations=False)
    try:
        _require_known_schema(db, spec.masked())
    except BaseException:
        db.close()
        raise
    return db


def _require_known_schema(db: peewee.Database, where: str) -> None:
    """Raise `StorageError` unless `db`'s schema is at `LATEST_VERSION`."""
    version = current_version(db)
    try:
        refuse_newer_schema(version)
    except DatabaseSchemaError as exc:
        raise DatabaseSchemaError(f"{where}: {exc}") from None
    if version == 0:
        raise StorageError(
            f"{where}: the database holds no engine schema: check database.url, or start the engine (run.py daemon) "
            "on it once to create the schema"
        )
    if version < LATEST_VERSION:
        raise StorageError(
            f"{where}: database schema version {version} is older than this command's ({LATEST_VERSION}) and it "
            "only reads, it does not migrate: start the engine (run.py daemon) of this version once to migrate "
            "it, or read it with the version of the engine that wrote it"
        )


def _json_lines(items: list[Any], out: TextIO) -> None:
    # Decimals as plain exact text, as the table and the control API print them: the exchange's and the
    # database's scale ("0.01000000") is storage detail.
    for item in items:
        out.write(orjson.dumps(jsonable(item)).decode() + "\n")


def run_orders(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print stored orders. Returns the process exit code (0 ok, 2 database refused, 5 database unreachable)."""
    out = out or sys.stdout
    statuses: set[OrderStatus] | None = None
    if args.status:
        statuses = set()
        for value in args.status:
            statuses |= {s for s in OrderStatus if s.is_open} if value == "open-any" else {OrderStatus(value)}
    orders = _read(
        args, find_orders, pair=args.pair, status=statuses, since=args.since, until=args.until,
        request_id=args.request_id, limit=args.limit, newest_first=True,
    )  # fmt: skip
    if isinstance(orders, int):
        return orders
    if args.json:
        _json_lines(orders, out)
        return 0
    headers = [
        "created",
        "client_order_id",
        "pair",
        "side",
        "type",
        "role",
        "status",
        "price",
        "amount",
        "filled",
        "avg_price",
        "fees",
    ]
    rows = [
        [
            o.created_at,
            o.client_order_id,
            o.pair,
            o.side.value,
            o.order_type.value,
            o.role.value,
            o.status.value,
            o.price,
            o.amount,
            o.filled,
            o.average_price,
            dict(o.fees),
        ]
        for o in orders
    ]
    render_table(headers, rows, out)
    out.write(f"{len(orders)} order(s)\n")
    return 0


def run_trades(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print stored trades. Returns the process exit code (0 ok, 2 database refused, 5 database unreachable)."""
    out = out or sys.stdout
    statuses = [TradeStatus(s) for s in args.status] if args.status else None
    trades = _read(
        args, find_trades, pair=args.pair, timeframe=args.timeframe, strategy=args.strategy, status=statuses,
        since=args.since, until=args.until, limit=args.limit, newest_first=True,
    )  # fmt: skip
    if isinstance(trades, int):
        return trades
    if args.json:
        _json_lines(trades, out)
        return 0
    headers = [
        "created",
        "request_id",
        "pair",
        "side",
        "status",
        "requested",
        "filled",
        "avg_price",
        "fees",
        "received",
        "remainder",
        "timeframe",
        "strategy",
        "rsi",
    ]
    rows = [
        [
            t.created_at,
            t.request_id,
            t.pair,
            t.side.value,
            t.status.value,
            t.requested,
            t.filled,
            t.average_price,
            " ".join(f"{plain_decimal(v)} {k}" for k, v in sorted(t.fees.items())) or None,
            t.received,
            t.remainder,
            t.timeframe,
            t.strategy,
            t.indicators.get("rsi"),
        ]
        for t in trades
    ]
    render_table(headers, rows, out)
    out.write(f"{len(trades)} trade(s)\n")
    return 0
