"""The read-only commands (`orders`, `trades`, `status`) as an operator runs them: exit codes and pipes.

Before: `run.py orders` against a database server that is down exited 2, the usage-error code (the documented code
for something that cannot be reached is 5); `run.py status | head -1` ended in a BrokenPipeError traceback; and a
live configuration without the exchange secret stopped `orders`/`trades`, which only read the database.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from db import connect
from db.cli import add_orders_arguments, add_trades_arguments, run_orders, run_trades
from engine.cli import main
from engine.service._commands import EXIT_UNREACHABLE
from tests.service import _fake_daemon
from tests.service._fake_daemon import TOKEN
from tests.service._proc import RUN, daemon_env

fake_daemon_url = _fake_daemon.fake_daemon_url
pytestmark = pytest.mark.timeout(120)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("add", "run"), [(add_orders_arguments, run_orders), (add_trades_arguments, run_trades)])
def test_a_database_that_cannot_be_reached_is_exit_5_not_the_usage_code(
    add: object, run: object, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add(parser)  # type: ignore[operator]
    args = parser.parse_args([])
    args.database_url = f"postgresql://bot:topsecret@127.0.0.1:{_closed_port()}/engine"
    assert run(args, io.StringIO()) == EXIT_UNREACHABLE  # type: ignore[operator]
    err = capsys.readouterr().err
    assert "cannot reach database" in err and "topsecret" not in err


def test_orders_with_a_live_configuration_without_the_exchange_secret_reads_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in os.environ if n.upper().startswith("FREQTRADE__")]:
        monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'engine.sqlite3'}"
    connect(url).close()  # a database with the schema, as the daemon leaves it
    config = tmp_path / "live.toml"
    config.write_text(
        f'[exchange]\nname = "binance"\n[execution]\ndry_run = false\n[database]\nurl = "{url}"\n', encoding="utf-8"
    )
    assert main(["orders", "--config", str(config)]) == 0
    assert "0 order(s)" in capsys.readouterr().out


def test_status_into_a_closed_pipe_ends_quietly(tmp_path: Path, fake_daemon_url: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written: `| head -1` once it has its line
    try:
        result = subprocess.run(
            [sys.executable, RUN, "status", "--url", fake_daemon_url, "--token-file", str(token_file)],
            cwd=tmp_path,
            env=daemon_env(tmp_path),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 128 + signal.SIGPIPE


def test_a_broken_pipe_in_the_daemon_is_not_taken_for_a_closed_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only a command's closed output pipe ends quietly (141); an EPIPE that reached the top of the daemon is an
    # error to see, not hidden behind a silent exit.
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_entry", RUN)
    assert spec is not None and spec.loader is not None
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)

    def broken() -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(entry, "main", broken)
    monkeypatch.setattr(sys, "argv", ["run.py", "daemon"])
    with pytest.raises(BrokenPipeError):
        entry._run()
