"""Human log lines cannot be forged: control characters in a message or a context value (a request path the
control API logs on an auth failure) are escaped, so every record is one line; a traceback keeps its lines."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from loguru import logger

from engine.logs import redact, setup_logging

FORGED = "/health\n2026-01-01 00:00:00.000 | INFO     | engine:1 | FAKE LINE\r\x1b[2K\x00\x85\u2028end"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    redact.clear()
    setup_logging(sink=buf, secrets=["SENTINEL-forge-secret\nsecond-line"])
    yield buf
    redact.clear()
    logger.remove()


def test_message_and_context_are_one_line(captured: io.StringIO) -> None:
    logger.bind(path=FORGED, peer="127.0.0.1").warning("control API: bad token for {}", FORGED)
    text = captured.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    for char in ("\r", "\x1b", "\x00", "\x85", "\u2028"):
        assert char not in text
    assert text.count("/health\\n2026-01-01") == 2 and "\\r\\x1b[2K\\x00\\x85\\u2028end" in text
    assert "\t" not in FORGED  # a tab stays as it is
    logger.info("a\tb")
    assert "a\tb" in captured.getvalue()


def test_a_secret_with_a_newline_is_still_masked(captured: io.StringIO) -> None:
    logger.bind(dsn="SENTINEL-forge-secret\nsecond-line").warning("key SENTINEL-forge-secret\nsecond-line")
    text = captured.getvalue()
    assert "SENTINEL-forge-secret" not in text and text.count("***") == 2 and text.count("\n") == 1


def test_the_traceback_keeps_its_lines(captured: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed\nforged")
    lines = captured.getvalue().splitlines()
    assert lines[0].endswith("failed\\nforged") and lines[1].startswith("Traceback")
    assert lines[-1] == "RuntimeError: boom"
