"""A log sink that cannot write (the log file on a full disk) is reported in one masked line a minute: loguru's own
report printed about 25 lines per failed line, with the raw record, so a secret the formatter masks reached stderr
(disk-full review)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from loguru import logger

from engine.logs import setup_logging

SECRET = "S3cr3tValueNeverLogged"


def test_a_failing_sink_is_reported_rarely_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    lines: list[str] = []
    setup_logging(level="INFO", secrets=[SECRET], sink=lines.append)

    def full(_message: Any) -> None:
        raise OSError(28, f"No space left on device writing {SECRET}")

    handler = logger.add(full, level="INFO")
    try:
        for n in range(50):
            logger.info("connecting with {} ({})", SECRET, n)
    finally:
        logger.remove(handler)
        setup_logging(level="INFO")
    text = err.getvalue()
    assert SECRET not in text and SECRET not in "".join(lines)
    assert text.count("failed to write") == 1, text  # one report (and its traceback once), not 50 blocks
    assert "failed to write" in text and "No space left" in text
    assert len(lines) == 50  # the other sink still has every line
