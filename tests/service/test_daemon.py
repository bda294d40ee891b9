"""`run.py daemon` and the CLI client as subprocesses: orders through the CLI, and shutdown on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.service import ApiClient
from tests.service._proc import ROOT, DaemonProcess, cli, daemon_env, interrupt, spawn_cli

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    workdir = tmp_path_factory.mktemp("cli")
    proc = DaemonProcess(workdir, FREQTRADE__EXECUTION__LIMIT_TIMEOUT_S="900")
    yield proc
    proc.signal(signal.SIGINT)
    try:
        assert proc.wait() == 0
    finally:
        proc.kill()


def _events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in lines if ln.startswith("{")]


def test_cli_order_watch_status_cancel(daemon: DaemonProcess) -> None:
    wd = daemon.workdir
    watcher, out, err = spawn_cli(wd, "watch", "--pair", "ETH/USDT", "--json")
    try:
        err.wait_for(lambda ln: ln.startswith("watching order events from http://127.0.0.1:"))
        placed = cli(wd, "order", "buy", "ETH/USDT", "0.1", "--price", "1500", "--key", "cli-1", "--json")
        assert placed.returncode == 0, placed.stderr
        order = json.loads(placed.stdout)["order"]
        assert order["status"] == "open" and order["pair"] == "ETH/USDT"

        status = cli(wd, "status")
        assert status.returncode == 0, status.stderr
        assert re.search(r"^status=(ok|degraded) ", status.stdout, re.MULTILINE), status.stdout
        assert order["client_order_id"] in status.stdout
        # The health table: one row per part of the engine.
        for row in ("database ", "gateway ", "pair:ETH/USDT ", "pair:BTC/USDT "):
            assert re.search(rf"^{re.escape(row)}", status.stdout, re.MULTILINE), status.stdout
        health = json.loads(cli(wd, "status", "--json").stdout)["health"]
        for label in health["gateway"].get("rate_limits") or {}:
            assert f"rate_limits:{label}" in status.stdout

        canceled = cli(wd, "cancel", "ETH/USDT", order["request_id"])
        assert canceled.returncode == 0, canceled.stderr
        assert "cancel requested for 1 order(s)" in canceled.stdout
        out.wait_for(lambda ln: '"kind": "done"' in ln and order["request_id"] in ln)
    finally:
        assert interrupt(watcher) == 0
    kinds = [e["kind"] for e in _events(out.lines) if e["request_id"] == order["request_id"]]
    assert kinds[-2:] == ["canceled", "done"]


def test_cli_human_order_prints_ids_and_fills(daemon: DaemonProcess) -> None:
    watcher, out, err = spawn_cli(daemon.workdir, "watch", "--pair", "ETH/USDT", "--json")
    try:
        err.wait_for(lambda ln: ln.startswith("watching order events"))
        # Marketable (below the market): fills at once.
        placed = cli(daemon.workdir, "order", "sell", "ETH/USDT", "0.1", "--price", "1000", "--timeout", "60")
        assert placed.returncode == 0, placed.stderr
        assert placed.stdout.startswith("accepted: sell 0.1")
        request_id = placed.stdout.split("request_id=")[1].split()[0]
        client_order_id = placed.stdout.split("client_order_id=")[1].split()[0]
        out.wait_for(lambda ln: '"kind": "done"' in ln and request_id in ln)
    finally:
        assert interrupt(watcher) == 0
    fills = [e for e in _events(out.lines) if e["kind"] == "fill" and e["request_id"] == request_id]
    assert sum(Decimal(str(e["fill"]["quantity"])) for e in fills) == Decimal("0.1")
    client = ApiClient(daemon.url, daemon.token)
    status, stored = client.request("GET", ApiClient.pair_path("ETH/USDT", client_order_id))
    assert status == 200 and Decimal(stored["order"]["filled"]) == Decimal("0.1")


def test_offline_orders_and_trades_as_tables_and_json(daemon: DaemonProcess) -> None:
    wd = daemon.workdir
    watcher, out, err = spawn_cli(wd, "watch", "--pair", "ETH/USDT", "--json")
    try:
        err.wait_for(lambda ln: ln.startswith("watching order events"))
        placed = cli(wd, "order", "sell", "ETH/USDT", "0.2", "--price", "1000", "--strategy", "offline", "--json")
        assert placed.returncode == 0, placed.stderr
        request_id = json.loads(placed.stdout)["order"]["request_id"]
        out.wait_for(lambda ln: '"kind": "done"' in ln and request_id in ln)
    finally:
        assert interrupt(watcher) == 0
    # Read from the database by a separate process while the daemon runs (no daemon call involved).
    orders = cli(wd, "orders", "--pair", "ETH/USDT", "--status", "filled", "--json")
    assert orders.returncode == 0, orders.stderr
    rows = [json.loads(ln) for ln in orders.stdout.splitlines()]
    assert request_id in [r["request_id"] for r in rows] and all(r["status"] == "filled" for r in rows)
    trades = cli(wd, "trades", "--strategy", "offline", "--json")
    assert trades.returncode == 0, trades.stderr
    [trade] = [json.loads(ln) for ln in trades.stdout.splitlines()]
    assert trade["request_id"] == request_id and Decimal(trade["filled"]) == Decimal("0.2")
    table = cli(wd, "trades", "--strategy", "offline", "--since", "1h")
    assert table.returncode == 0 and request_id in table.stdout and "1 trade(s)" in table.stdout
    assert cli(wd, "orders", "--status", "open-any").returncode == 0


def test_cli_balances_table_and_json(daemon: DaemonProcess) -> None:
    common = ["--url", daemon.url, "--token-file", str(daemon.workdir / "data" / "api-token")]
    table = cli(daemon.workdir, "balances", *common)
    raw = cli(daemon.workdir, "balances", *common, "--json")
    assert table.returncode == 0 and raw.returncode == 0, (table.stderr, raw.stderr)
    data = json.loads(raw.stdout)
    usdt = data["balances"]["USDT"]
    row = next(ln for ln in table.stdout.splitlines() if ln.startswith("USDT "))
    assert Decimal(row.split()[1]) == Decimal(usdt["free"])
    assert "wallet_btc=" in table.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("order", "buy", "ETH/USDT", "3", "--price", "3600"), 1, "risk_limit"),  # over 10 000 USDT
        (("order", "buy", "ETH/USDT", "0.1", "--price", "100000"), 2, "filter_failure"),
        (("order", "buy", "ETH/USDT", "0.1", "--price", "-5"), 2, "must be a number greater than 0"),
        (("order", "buy", "XRP/USDT", "1", "--price", "1"), 2, "not_whitelisted"),
        (("cancel", "ETH/USDT", "no-such-request"), 3, "not_found"),
    ],
)
def test_cli_exit_codes(daemon: DaemonProcess, args: tuple[str, ...], code: int, message: str) -> None:
    result = cli(daemon.workdir, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr


def test_cli_wrong_token_exits_4_and_no_daemon_exits_5(daemon: DaemonProcess, tmp_path: Path) -> None:
    bad = tmp_path / "token"
    bad.write_text("x" * 40)
    result = cli(daemon.workdir, "status", "--token-file", str(bad))
    assert result.returncode == 4 and "authentication failed" in result.stderr
    assert "x" * 40 not in result.stderr + result.stdout
    unreachable = cli(daemon.workdir, "status", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 5 and "not reachable" in unreachable.stderr


def test_client_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from engine.cli import build_parser\n"
        "for c in ('order', 'cancel', 'status', 'watch', 'daemon'): build_parser(c)\n"
        "print(sorted(m for m in ('ccxt','pydantic','aiohttp','peewee','pykka') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("mode", "canceled", "left_open"), [("cancel", 1, 0), ("keep", 0, 1)])
def test_sigterm_with_an_open_order(tmp_path: Path, mode: str, canceled: int, left_open: int) -> None:
    daemon = DaemonProcess(tmp_path, FREQTRADE__EXECUTION__ON_SHUTDOWN=mode)
    try:
        client = ApiClient(daemon.url, daemon.token)
        status, placed = client.request(
            "POST", "/orders", {"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "price": "50000"}
        )
        assert status == 201, placed
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.err.text[-3000:]
    finally:
        daemon.kill()
    line = f"shutdown complete: on_shutdown={mode}, canceled={canceled}, left open={left_open}"
    assert line in daemon.out.text
    assert not (tmp_path / "data" / "api-endpoint.json").exists()
    if mode == "keep":
        # The embedded simulator lives in the daemon's process: the order kept on it ends with it, and the
        # daemon says so (Engine.stop does not: the daemon passed it the simulator, as one the engine does not own).
        assert f"{line}, ended with the simulator=1\n" in daemon.out.text
        warned = [ln for ln in daemon.err.text.splitlines() if "| WARNING " in ln and "end with it" in ln]
        assert len(warned) == 1 and "1 open order(s) kept" in warned[0], daemon.err.text[-3000:]
        # The next start reports what the database still holds as open from this run. (Its embedded simulator
        # is a new one that never saw the order: "keep" again, so shutdown does not wait for its lookup.)
        again = DaemonProcess(tmp_path, FREQTRADE__EXECUTION__ON_SHUTDOWN="keep")
        try:
            again.signal(signal.SIGTERM)
            assert again.wait() == 0
        finally:
            again.kill()
        assert "database: 1 order(s) left open by an earlier run" in again.out.text
        assert placed["order"]["client_order_id"] in again.out.text


def test_second_signal_exits_at_once_and_the_database_stays_sound(tmp_path: Path) -> None:
    import sqlite3

    daemon = DaemonProcess(tmp_path)
    try:
        client = ApiClient(daemon.url, daemon.token)
        order = {"pair": "BTC/USDT", "side": "buy", "amount": "0.01", "price": "50000"}
        assert client.request("POST", "/orders", order)[0] == 201
        # Two different signals: Python runs both handlers (one signal number twice could coalesce).
        daemon.signal(signal.SIGINT)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 128 + signal.SIGTERM
    finally:
        daemon.kill()
    assert (
        "second SIGTERM: exiting now (orders still open end with the simulator this daemon started)" in daemon.out.text
    )
    assert "shutdown complete" not in daemon.out.text
    with sqlite3.connect(tmp_path / "engine.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (1,)


def test_port_in_use_is_a_clear_start_failure(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "daemon"],
            cwd=tmp_path,
            env=daemon_env(tmp_path, FREQTRADE__API__PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert proc.returncode == 1
    assert f"daemon not started: control API cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert not (tmp_path / "data" / "api-endpoint.json").exists()
    # Refused before the engine started: stopping after its crash recovery would have resumed, and under
    # on_shutdown = cancel canceled, whatever orders the database held open.
    assert "crash recovery" not in proc.stdout and "engine starting" not in proc.stderr


def test_a_database_newer_than_the_engine_is_a_clear_start_failure(tmp_path: Path) -> None:
    import sqlite3

    from db import LATEST_VERSION, connect

    connect(f"sqlite:///{tmp_path}/engine.sqlite3").close()
    with sqlite3.connect(tmp_path / "engine.sqlite3") as raw:
        raw.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, 'newer', '2026-11-26 00:00:00')",
            (LATEST_VERSION + 1,),
        )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "daemon"],
        cwd=tmp_path,
        env=daemon_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 1
    message = f"database schema version {LATEST_VERSION + 1} is newer than this engine knows ({LATEST_VERSION})"
    assert "daemon not started: database: " in proc.stderr and message in proc.stderr
    assert not (tmp_path / "data" / "api-endpoint.json").exists()
