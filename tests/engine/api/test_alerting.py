"""The engine's alert function (`engine.api._alerting.log_alert`, what the root and the lock watch call) never raises
into its caller: a loguru sink added with ``catch=False`` that raises would otherwise escape into the root actor,
the supervisor, and kill it over a log line. The alert goes to stderr instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loguru import logger

from engine.api._alerting import log_alert


@pytest.fixture
def raising_sink(request: pytest.FixtureRequest) -> Iterator[None]:
    error: BaseException = request.param

    def sink(_message: object) -> None:
        raise error

    handler = logger.add(sink, level="CRITICAL", catch=False)
    try:
        yield
    finally:
        logger.remove(handler)


@pytest.mark.parametrize("raising_sink", [OSError("disk full"), SystemExit(3)], indirect=True)
@pytest.mark.usefixtures("raising_sink")
def test_an_alert_whose_log_sink_raises_goes_to_stderr_and_never_to_the_caller(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log_alert("stop_trading", "the exchange said stop")  # returns: the root actor calling it lives on
    err = capsys.readouterr().err
    assert "ALERT stop_trading: the exchange said stop" in err
    assert "logging this alert failed" in err


def test_an_alert_is_logged_at_critical_with_its_key_bound() -> None:
    seen: list[tuple[str, object, str]] = []
    handler = logger.add(
        lambda m: seen.append((m.record["level"].name, m.record["extra"].get("alert"), m.record["message"])),
        level="CRITICAL",
    )
    try:
        log_alert("database", "spool full")
    finally:
        logger.remove(handler)
    assert seen == [("CRITICAL", "database", "ALERT database: spool full")]


@pytest.mark.parametrize("raising_sink", [OSError("write failed: SENTINEL-alert-secret")], indirect=True)
@pytest.mark.usefixtures("raising_sink")
def test_an_alert_written_to_stderr_is_masked_like_a_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    # The stderr fallback wrote the alert and the sink's error as they were: a secret in either (an exchange error
    # quoting a URL, a sink's message) reached the output unmasked.
    from engine.logs import MASK, redact

    redact.add(["SENTINEL-alert-secret"])
    try:
        log_alert("auth_failure", "signed request to https://x/?apiKey=SENTINEL-alert-secret refused")
    finally:
        redact.clear()
    err = capsys.readouterr().err
    assert "SENTINEL-alert-secret" not in err
    assert f"apiKey={MASK} refused" in err and "ALERT auth_failure" in err
