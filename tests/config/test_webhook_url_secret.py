"""A webhook URL's path is a secret (Discord, Slack): show-config hides it, and so does every log line."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from loguru import logger

from engine.config import resolve_config
from engine.logs import redact, setup_logging

SENTINEL = "SENTINEL-webhook-path-5f3a"
URL = f"https://discord.com/api/webhooks/1234567890/{SENTINEL}?wait=true"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    redact.clear()
    loaded, problems = resolve_config(None, {"FREQTRADE__ALERTS__WEBHOOK_URL": URL})
    assert loaded is not None, problems
    setup_logging(sink=buf, secrets=loaded.config.secret_values())
    yield buf
    redact.clear()
    logger.remove()


def test_the_webhook_url_and_its_path_are_masked_in_logs(captured: io.StringIO) -> None:
    logger.warning("posting to {}", URL)
    logger.warning("path {}", URL.split("discord.com", 1)[1])
    logger.bind(url=URL).error("failed")
    text = captured.getvalue()
    assert SENTINEL not in text and "1234567890" not in text
    assert text.count("***") >= 3


def test_a_bare_host_is_not_a_secret() -> None:
    loaded, problems = resolve_config(None, {"FREQTRADE__ALERTS__WEBHOOK_URL": "https://hooks.example.com"})
    assert loaded is not None, problems
    assert "https://hooks.example.com" not in loaded.config.secret_values()
