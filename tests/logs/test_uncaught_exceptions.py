"""Uncaught exceptions, in the main thread or any other, go through loguru and so through the redactor, instead of
the interpreter printing the raw traceback to stderr."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator

import pytest
from loguru import logger

from engine.logs import redact, setup_logging

SENTINEL = "SENTINEL-uncaught-secret-9d2e"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    # The hooks set-up installs are put back as they were after the test.
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    buf = io.StringIO()
    redact.clear()
    setup_logging(sink=buf, secrets=[SENTINEL])
    yield buf
    redact.clear()
    logger.remove()


def _fail() -> None:
    raise RuntimeError(f"connecting with password={SENTINEL}")


def test_an_exception_in_a_thread_is_logged_masked(captured: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    thread = threading.Thread(target=_fail, name="worker-7")
    thread.start()
    thread.join()
    text = captured.getvalue()
    assert "uncaught RuntimeError in thread worker-7" in text and "Traceback" in text
    assert "RuntimeError: connecting with password=***" in text and SENTINEL not in text
    err = capsys.readouterr().err
    assert SENTINEL not in err


def test_an_uncaught_exception_in_the_main_thread_is_logged_masked(
    captured: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        _fail()
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    text = captured.getvalue()
    assert "uncaught RuntimeError in the main thread" in text and "password=***" in text and SENTINEL not in text
    assert SENTINEL not in capsys.readouterr().err


def test_system_exit_in_a_thread_stays_quiet_and_set_up_twice_keeps_one_hook(captured: io.StringIO) -> None:
    hook = threading.excepthook
    setup_logging(sink=captured, secrets=[SENTINEL])
    assert threading.excepthook is hook
    thread = threading.Thread(target=sys.exit)
    thread.start()
    thread.join()
    assert captured.getvalue() == ""
