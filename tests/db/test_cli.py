"""`orders` / `trades` commands: filters, table and JSON output, clear errors."""

from __future__ import annotations

import argparse
import io
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from db import LATEST_VERSION, BatchWriter, connect, current_version, migrate
from db.cli import add_orders_arguments, add_trades_arguments, parse_since, run_orders, run_trades
from engine.domain import OrderStatus, TradeStatus
from tests.db import _records as rec
from tests.db._records import T0


def _args(add: object, url: str, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser)  # type: ignore[operator]
    args = parser.parse_args(list(argv))
    args.database_url = url
    return args


@pytest.fixture
def filled_url(db_url: str) -> str:
    db = connect(db_url)
    BatchWriter(db).write(
        [
            rec.order("a", created_at=T0, updated_at=T0),
            rec.order("b", pair="ETH/USDT", created_at=T0 + timedelta(hours=1), updated_at=T0 + timedelta(hours=1)),
            rec.progressed(rec.order("c"), Decimal("0.5"), OrderStatus.FILLED, average_price=Decimal("50000.01")),
            rec.trade("t1", indicators={"rsi": Decimal("28.5")}),
            rec.trade("t2", timeframe="1h", status=TradeStatus.FILLED, filled=Decimal(1)),
            rec.trade("t3", strategy="other"),
        ]
    )
    db.close()
    return db_url


def test_orders_table_and_filters(filled_url: str) -> None:
    out = io.StringIO()
    assert run_orders(_args(add_orders_arguments, filled_url), out) == 0
    text = out.getvalue()
    assert text.splitlines()[0].split()[:3] == ["created", "client_order_id", "pair"]
    assert "3 order(s)" in text
    assert "50000.01" in text
    out = io.StringIO()
    run_orders(_args(add_orders_arguments, filled_url, "--pair", "ETH/USDT"), out)
    assert "1 order(s)" in out.getvalue()
    assert " b " in out.getvalue()
    out = io.StringIO()
    run_orders(_args(add_orders_arguments, filled_url, "--status", "open-any", "--json"), out)
    ids = [orjson.loads(line)["client_order_id"] for line in out.getvalue().splitlines()]
    assert ids == ["b", "a"]  # newest first
    out = io.StringIO()
    run_orders(_args(add_orders_arguments, filled_url, "--status", "filled", "--json"), out)
    assert orjson.loads(out.getvalue())["filled"] == "0.5"  # exact decimal as text
    out = io.StringIO()
    until = (T0 + timedelta(minutes=30)).isoformat()
    run_orders(_args(add_orders_arguments, filled_url, "--until", until, "--json"), out)
    before = [orjson.loads(line)["client_order_id"] for line in out.getvalue().splitlines()]
    assert "a" in before and "b" not in before  # b was created an hour after T0
    out = io.StringIO()
    request_id = orjson.loads(_one(filled_url, "b"))["request_id"]
    run_orders(_args(add_orders_arguments, filled_url, "--request-id", request_id, "--json"), out)
    assert "b" in [orjson.loads(line)["client_order_id"] for line in out.getvalue().splitlines()]


def _one(url: str, cid: str) -> str:
    out = io.StringIO()
    run_orders(_args(add_orders_arguments, url, "--json", "--limit", "100"), out)
    return next(line for line in out.getvalue().splitlines() if orjson.loads(line)["client_order_id"] == cid)


def test_trades_filters(filled_url: str) -> None:
    out = io.StringIO()
    assert run_trades(_args(add_trades_arguments, filled_url, "--timeframe", "5m", "--strategy", "rsi_dip"), out) == 0
    assert "1 trade(s)" in out.getvalue()
    assert "28.5" in out.getvalue()
    out = io.StringIO()
    run_trades(_args(add_trades_arguments, filled_url, "--status", "filled", "--json"), out)
    assert [orjson.loads(x)["request_id"] for x in out.getvalue().splitlines()] == ["t2"]
    out = io.StringIO()
    since = (T0 + timedelta(days=1)).isoformat()
    run_trades(_args(add_trades_arguments, filled_url, "--since", since, "--limit", "5"), out)
    assert "0 trade(s)" in out.getvalue()


def test_since_forms() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-01-31T12:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="invalid --since"):
        parse_since("yesterday")


def test_database_error_is_reported_without_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://u:topsecret@127.0.0.1:1/db"
    assert run_orders(_args(add_orders_arguments, url), io.StringIO()) == 5  # not reachable (2 is a usage error)
    err = capsys.readouterr().err
    assert "cannot reach database" in err
    assert "topsecret" not in err


def test_a_database_newer_than_this_engine_is_a_clear_error(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = connect(sqlite_url)
    db.execute_sql(
        f"INSERT INTO schema_version (version, description, applied_at) VALUES ({LATEST_VERSION + 1}, 'newer', "
        "'2026-01-01 00:00:00.000000')"
    )
    db.close()
    assert run_orders(_args(add_orders_arguments, sqlite_url), io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {sqlite_url}: database schema version {LATEST_VERSION + 1} is newer than this engine knows "
        f"({LATEST_VERSION}): run a newer engine, or point it at another database\n"
    )


def test_a_missing_sqlite_file_is_an_error_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A mistyped path used to create an empty database there and print "0 order(s)".
    path = tmp_path / "typo" / "bexec.sqlite"
    url = f"sqlite:///{path}"
    assert run_orders(_args(add_orders_arguments, url), io.StringIO()) == 2
    assert run_trades(_args(add_trades_arguments, url), io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.count(f"error: no SQLite database file at {path}") == 2
    assert "check database.url" in err
    assert not path.parent.exists()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_fresh_url"))


def test_an_older_schema_is_refused_and_not_migrated(fresh_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Reading must not migrate: an older engine may be running on this database, and could not write to the
    # schema a newer CLI would leave it.
    db = connect(fresh_url, apply_migrations=False)
    migrate(db, target=LATEST_VERSION - 1)
    db.close()
    out = io.StringIO()
    assert run_orders(_args(add_orders_arguments, fresh_url), out) == 2
    assert out.getvalue() == ""
    err = capsys.readouterr().err
    assert f"database schema version {LATEST_VERSION - 1} is older than this command's ({LATEST_VERSION})" in err
    assert "start the engine" in err
    db = connect(fresh_url, apply_migrations=False)
    try:
        assert current_version(db) == LATEST_VERSION - 1
    finally:
        db.close()


def test_a_database_without_the_schema_is_refused_and_left_empty(
    fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if fresh_url.startswith("sqlite"):
        sqlite3.connect(fresh_url.removeprefix("sqlite:///")).close()  # an existing, empty file
    assert run_trades(_args(add_trades_arguments, fresh_url), io.StringIO()) == 2
    assert "holds no engine schema" in capsys.readouterr().err
    db = connect(fresh_url, apply_migrations=False)
    try:
        assert db.get_tables() == []
    finally:
        db.close()


@pytest.mark.parametrize("spelling", ["ETH/USDT", "eth-usdt", "ETH_USDT", "eth/usdt"])
def test_a_pair_in_any_spelling_the_api_takes_finds_its_orders(filled_url: str, spelling: str) -> None:
    # An exact match on another spelling found nothing and said "0 order(s)".
    out = io.StringIO()
    run_orders(_args(add_orders_arguments, filled_url, "--pair", spelling), out)
    assert "1 order(s)" in out.getvalue()


@pytest.mark.parametrize("spelling", ["ETHUSDT", "ETH/US/DT", "ETH/"])
def test_an_unreadable_pair_is_a_usage_error(spelling: str) -> None:
    with pytest.raises(SystemExit) as exited:
        _args(add_trades_arguments, "sqlite:///unused", "--pair", spelling)
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--since", "1000000d"),  # before year 1
        ("--since", "9999999999d"),  # beyond what a timedelta holds
        ("--until", "0001-01-01T00:00+01:00"),  # year 0 in UTC
        ("--until", "9999-12-31T23:59-01:00"),  # year 10000 in UTC
    ],
)
@pytest.mark.parametrize("add", [add_orders_arguments, add_trades_arguments])
def test_a_time_outside_the_calendar_is_a_usage_error(
    add: object, flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: OverflowError traceback, exit 1; usage errors exit 2.
    with pytest.raises(SystemExit) as exited:
        _args(add, "sqlite:///unused", flag, value)
    assert exited.value.code == 2
    assert f"argument {flag}: {value!r} is outside the years 1 to 9999 (UTC)" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "0", "1001", "ten"])
@pytest.mark.parametrize("add", [add_orders_arguments, add_trades_arguments])
def test_a_limit_outside_the_api_bound_is_a_usage_error(
    add: object, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: -1 listed every row on SQLite (and is an error on PostgreSQL), 0 listed none.
    with pytest.raises(SystemExit) as exited:
        _args(add, "sqlite:///unused", "--limit", value)
    assert exited.value.code == 2
    assert "argument --limit:" in capsys.readouterr().err


def test_the_limit_bound_is_the_control_api_one(filled_url: str) -> None:
    from db.cli import MAX_LIMIT
    from engine.service._schemas import MAX_LIMIT as API_MAX_LIMIT

    assert MAX_LIMIT == API_MAX_LIMIT
    assert _args(add_orders_arguments, filled_url, "--limit", str(MAX_LIMIT)).limit == MAX_LIMIT
    out = io.StringIO()
    assert run_orders(_args(add_orders_arguments, filled_url, "--limit", "1"), out) == 0
    assert "1 order(s)" in out.getvalue()


def test_json_decimals_are_plain_whatever_scale_the_exchange_sent(db_url: str) -> None:
    # Binance sends 8 places ("0.01000000"): the JSON lines printed them as stored, unlike the table and the
    # control API. The value is the same, so is the text: exact, no trailing zeros, no exponent.
    db = connect(db_url)
    BatchWriter(db).write(
        [
            rec.progressed(
                rec.order("z", amount=Decimal("0.01000000")),
                Decimal("0E-8"),
                OrderStatus.CANCELED,
                average_price=Decimal("35.02000000"),
            ),
            rec.trade("tz", requested=Decimal("0.01000000"), filled=Decimal("0E-8")),
        ]
    )
    db.close()
    out = io.StringIO()
    assert run_orders(_args(add_orders_arguments, db_url, "--json"), out) == 0
    order = orjson.loads(out.getvalue())
    assert (order["amount"], order["filled"], order["average_price"]) == ("0.01", "0", "35.02")
    out = io.StringIO()
    assert run_trades(_args(add_trades_arguments, db_url, "--json"), out) == 0
    trade = orjson.loads(out.getvalue())
    assert (trade["requested"], trade["filled"]) == ("0.01", "0")


def test_a_trade_shows_its_fees_and_what_a_buy_left_to_sell(db_url: str) -> None:
    # Money review: the README says to sell `trade.received`, not `filled`, but only Python could see it: the JSON
    # (CLI, control API, History) and the table left it out, and the table showed no fees.
    from engine.service._schemas import trade_json

    bought = rec.trade("fee-in-base", status=TradeStatus.FILLED, filled=Decimal("0.01"), average_price=Decimal(60000),
                       fees={"BTC": Decimal("0.00001")}, remainder=Decimal(0), requested=Decimal("0.01"))  # fmt: skip
    db = connect(db_url)
    BatchWriter(db).write([bought])
    db.close()
    out = io.StringIO()
    assert run_trades(_args(add_trades_arguments, db_url, "--json"), out) == 0
    row = orjson.loads(out.getvalue())
    assert (row["filled"], row["received"], row["fees"]) == ("0.01", "0.00999", {"BTC": "0.00001"})
    assert trade_json(bought)["received"] == "0.00999"
    out = io.StringIO()
    run_trades(_args(add_trades_arguments, db_url), out)
    header, _rule, line = out.getvalue().splitlines()[:3]
    assert "fees" in header.split() and "received" in header.split()
    assert "0.00001 BTC" in line and "0.00999" in line


def test_the_watch_line_of_a_done_event_says_what_the_request_came_to() -> None:
    from datetime import UTC, datetime

    from engine.api import EngineEvent, EventKind
    from engine.service._schemas import event_json
    from engine.service._views import event_line

    done = rec.trade("r-done", status=TradeStatus.FILLED, filled=Decimal("0.01"), average_price=Decimal(60000),
                     fees={"BTC": Decimal("0.00001")}, remainder=Decimal(0), requested=Decimal("0.01"))  # fmt: skip
    event = EngineEvent(EventKind.DONE, done.pair, datetime(2026, 1, 1, tzinfo=UTC), request_id=done.request_id,
                        trade=done, message="filled")  # fmt: skip
    line = event_line(event_json(event))
    assert "trade=filled filled=0.01 of 0.01 avg=60000 fees=0.00001 BTC received=0.00999" in line, line
