"""What the CLI client commands (`status`, `order`, `cancel`, `watch`, `balances`) need of the configuration.

Before: they validated it as for trading, so a live configuration without the exchange secret (the daemon's host
has it, an operator's shell need not) made `run.py status --config live.toml` exit with "live mode … needs
exchange.key and exchange.secret". And a token file shorter than 16 characters said "start the daemon first" with
exit 5 (not reachable), though the daemon ran and the file was the problem: an authentication failure (exit 4).
"""

from __future__ import annotations

import argparse
import io
import socket
from pathlib import Path

import pytest

from engine.service._commands import (
    EXIT_AUTH,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    add_order_arguments,
    add_status_arguments,
    run_order,
    run_status,
)
from tests.service import _fake_daemon
from tests.service._fake_daemon import TOKEN

fake_daemon_url = _fake_daemon.fake_daemon_url
LIVE = '[exchange]\nname = "binance"\n[execution]\ndry_run = false\n[api]\ntoken_path = "{token}"\n'


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.upper().startswith("FREQTRADE__")]:
        monkeypatch.delenv(name)


def _live_config(tmp_path: Path, token: str = TOKEN) -> Path:
    token_path = tmp_path / "api-token"
    token_path.write_text(token + "\n", encoding="utf-8")
    config = tmp_path / "live.toml"
    config.write_text(LIVE.format(token=token_path), encoding="utf-8")
    return config


def _status(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="status")
    add_status_arguments(parser)
    return run_status(parser.parse_args(argv), io.StringIO())


def test_status_with_a_live_configuration_without_the_exchange_secret_asks_the_daemon(
    tmp_path: Path, fake_daemon_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _status("--config", str(_live_config(tmp_path)), "--url", fake_daemon_url) == EXIT_OK
    assert "needs exchange.key" not in capsys.readouterr().err


def test_order_with_a_live_configuration_without_the_exchange_secret_gets_to_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="order")
    add_order_arguments(parser)
    args = parser.parse_args(["buy", "BTC/USDT", "0.001", "--config", str(_live_config(tmp_path))])
    with socket.socket() as sock:  # a port nothing listens on: the command gets as far as sending
        sock.bind(("127.0.0.1", 0))
        args.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert run_order(args, io.StringIO()) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "not reachable" in err and "configuration invalid" not in err


def test_a_token_file_shorter_than_16_characters_is_an_authentication_error(
    tmp_path: Path, fake_daemon_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _live_config(tmp_path, token="short")
    assert _status("--config", str(config), "--url", fake_daemon_url) == EXIT_AUTH
    err = capsys.readouterr().err
    assert f"the API token file {tmp_path / 'api-token'} is invalid" in err
    assert "start the daemon first" not in err and "short" not in err.replace("shorter", "")


def test_a_missing_token_file_named_with_token_file_is_an_authentication_error(
    tmp_path: Path, fake_daemon_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert _status("--config", str(_live_config(tmp_path)), "--url", fake_daemon_url, "--token-file", str(missing)) == (
        EXIT_AUTH
    )
    assert f"cannot read the API token file {missing}" in capsys.readouterr().err


def test_no_token_file_yet_still_says_start_the_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[api]\ntoken_path = "{tmp_path / "api-token"}"\n', encoding="utf-8")
    assert _status("--config", str(config)) == EXIT_UNREACHABLE
    assert "start the daemon first" in capsys.readouterr().err


def test_an_invalid_configuration_is_exit_1_as_documented(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[api]\nport = -1\n", encoding="utf-8")
    assert _status("--config", str(config)) == EXIT_REFUSED
    assert "configuration invalid" in capsys.readouterr().err
