"""Secrets sent in clear text are warned about at start: a control API beyond loopback (plain HTTP with the bearer
token) and http:// alert destinations (webhook token and secret path, Telegram bot token)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from engine.config import resolve_config
from engine.service._exposure import cleartext_warnings
from tests.service._proc import DaemonProcess

SECRET_PATH = "SENTINEL-hook-path-77aa"


def _warnings(**env: str) -> list[str]:
    loaded, problems = resolve_config(None, env)
    assert loaded is not None, problems
    return cleartext_warnings(loaded.config)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.5"])
def test_loopback_and_https_say_nothing(host: str) -> None:
    assert (
        _warnings(
            FREQTRADE__API__HOST=host,
            FREQTRADE__ALERTS__WEBHOOK_URL="https://hooks.example.com/x",
            FREQTRADE__ALERTS__TELEGRAM_TOKEN="123:abc",
            FREQTRADE__ALERTS__TELEGRAM_CHAT_ID="42",
        )
        == []
    )
    assert _warnings(FREQTRADE__ALERTS__WEBHOOK_URL="http://127.0.0.1:9000/hook") == []


def test_each_cleartext_exposure_is_warned_without_the_secret() -> None:
    warnings = _warnings(
        FREQTRADE__API__HOST="0.0.0.0",
        FREQTRADE__ALERTS__WEBHOOK_URL=f"http://hooks.example.com/{SECRET_PATH}",
        FREQTRADE__ALERTS__TELEGRAM_TOKEN="123:abc",
        FREQTRADE__ALERTS__TELEGRAM_CHAT_ID="42",
        FREQTRADE__ALERTS__TELEGRAM_API_URL="http://tg.example.com",
    )
    assert len(warnings) == 3
    assert "'0.0.0.0' is not loopback" in warnings[0]
    assert "webhook_url is http:// to hooks.example.com" in warnings[1]
    assert "telegram_api_url is http:// to tg.example.com" in warnings[2]
    assert not any(SECRET_PATH in w or "123:abc" in w for w in warnings)


@pytest.mark.timeout(120)
def test_the_daemon_warns_at_start(tmp_path: Path) -> None:
    daemon = DaemonProcess(
        tmp_path,
        FREQTRADE__API__HOST="0.0.0.0",
        FREQTRADE__ALERTS__WEBHOOK_URL=f"http://hooks.example.invalid/{SECRET_PATH}",
    )
    try:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    finally:
        daemon.kill()
    log = daemon.err.text
    assert "WARNING" in log and "'0.0.0.0' is not loopback" in log, log[-3000:]
    assert "webhook_url is http:// to hooks.example.invalid" in log
    assert SECRET_PATH not in log + daemon.out.text
