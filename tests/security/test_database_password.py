"""Invariant 6 for `database.password`: a sentinel password never shows in logs, command output, reprs or errors.

The log redaction filter is switched off here (`_no_redaction`): it would mask a leak, and the point is that no
code path emits the password in the first place. Every URL-encoded form is searched too, since the password
travels percent-encoded inside the connection URL.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from loguru import logger

from db import DatabaseUnavailableError, DatabaseUrlError, InstanceLock, connect, parse_url, with_password
from engine.cli import main
from engine.config import Config, resolve_config
from engine.logs import redact, setup_logging

PASSWORD = "SENTINELdbpw@/:%?#&+ x"
URL_PASSWORD = "SENTINELurlpw"
SENTINELS = [
    form
    for secret in (PASSWORD, URL_PASSWORD)
    for form in (secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret))
]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_clean(where: str, text: str) -> None:
    for sentinel in SENTINELS:
        assert sentinel not in text, f"database password leaked into {where}"
    assert "SENTINEL" not in text, f"part of the database password leaked into {where}"


@pytest.fixture
def _no_redaction(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    redact.clear()
    monkeypatch.setattr(redact, "add", lambda _secrets: None)
    yield
    logger.remove()
    redact.clear()


@pytest.fixture
def url() -> str:
    """A PostgreSQL URL naming the user only, on a port where nothing listens."""
    return f"postgresql://bexec@127.0.0.1:{_closed_port()}/bexec"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("FREQTRADE__DATABASE__URL", url)
    monkeypatch.setenv("FREQTRADE__DATABASE__PASSWORD", PASSWORD)


@pytest.mark.usefixtures("_no_redaction", "env")
def test_check_config_and_show_config_never_print_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--log-level", "DEBUG"]) == 0
    out = capsys.readouterr()
    assert "database=postgresql" in out.out
    _assert_clean("check-config output", out.out + out.err)
    assert main(["show-config", "--log-level", "DEBUG"]) == 0
    out = capsys.readouterr()
    assert 'password = "REDACTED"  # env FREQTRADE__DATABASE__PASSWORD' in out.out
    _assert_clean("show-config output", out.out + out.err)


@pytest.mark.usefixtures("_no_redaction", "env")
def test_orders_command_with_the_database_down_never_prints_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREQTRADE__LOGGING__LEVEL", "DEBUG")
    assert main(["orders"]) == 5  # the database not reachable
    out = capsys.readouterr()
    assert "cannot reach database postgresql://bexec:***@127.0.0.1" in out.err  # it did try, with a password
    _assert_clean("orders output", out.out + out.err)


@pytest.mark.usefixtures("_no_redaction")
def test_connection_errors_and_the_daemon_start_never_show_it(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.service._daemon import _leftover_open_orders

    log = io.StringIO()
    setup_logging(level="DEBUG", sink=log.write)
    resolved = Config.model_validate({"database": {"url": url, "password": PASSWORD}}).database.connection_url()
    assert parse_url(resolved).password == PASSWORD
    with pytest.raises(DatabaseUnavailableError) as info:
        connect(resolved, connect_timeout=1)
    assert info.value.__cause__ is None  # the driver error (with its DSN) is not chained
    assert _leftover_open_orders(resolved) == -1  # the daemon's pre-start read: logs and prints the failure
    out = capsys.readouterr()
    assert "could not read the database before start" in log.getvalue()
    for where, text in {
        "exception": f"{info.value}\n{info.value!r}",
        "daemon output": out.out + out.err,
        "log": log.getvalue(),
    }.items():
        _assert_clean(where, text)


def test_reprs_never_show_it(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import actors.root
    from engine.api import Engine

    monkeypatch.setenv("FREQTRADE__DATABASE__URL", url)
    monkeypatch.setenv("FREQTRADE__DATABASE__PASSWORD", PASSWORD)
    loaded, problems = resolve_config(None)
    assert loaded is not None, problems
    resolved = loaded.config.database.connection_url()
    seen: dict[str, Any] = {}

    class _Captured(Exception):
        pass

    def fake_start(settings: actors.root.RootSettings, **_kw: Any) -> None:
        seen["settings"] = settings
        raise _Captured

    monkeypatch.setattr(actors.root.RootActor, "start", fake_start)
    # The server is not there: the lock (taken first) is stood in for.
    monkeypatch.setattr("db._lock.acquire_instance_lock", lambda url, **_kw: InstanceLock(url))
    with pytest.raises(_Captured):
        Engine.start(loaded.config, spool_path=tmp_path / "spool.jsonl")
    spec = parse_url(resolved)
    texts = {
        "config": f"{loaded.config!r}\n{loaded.config}\n{loaded.config.database!r}",
        "loaded config": repr(loaded),
        "resolved URL": repr(resolved),
        "parsed URL": f"{spec!r}\n{spec}\n{spec.masked()}",
        "engine settings": repr(seen["settings"]),
    }
    for where, text in texts.items():
        _assert_clean(where, text)


def test_two_passwords_are_refused_without_showing_either(monkeypatch: pytest.MonkeyPatch) -> None:
    both = f"postgresql://bexec:{URL_PASSWORD}@db.example/bexec"
    monkeypatch.setenv("FREQTRADE__DATABASE__URL", both)
    monkeypatch.setenv("FREQTRADE__DATABASE__PASSWORD", PASSWORD)
    loaded, problems = resolve_config(None)
    assert loaded is None
    _assert_clean("config problems", "\n".join(str(p) for p in problems))
    with pytest.raises(DatabaseUrlError, match="keep only one") as info:
        with_password(both, PASSWORD)
    _assert_clean("URL error", f"{info.value}\n{info.value!r}")


@pytest.mark.postgres
@pytest.mark.usefixtures("_no_redaction")
def test_a_real_connection_uses_it_and_logs_without_it(pg_url: str) -> None:
    log = io.StringIO()
    setup_logging(level="DEBUG", sink=log.write)
    db = connect(with_password(pg_url, PASSWORD), apply_migrations=False)
    try:
        assert db.connection().info.password == PASSWORD  # libpq was given it (the test server trusts anyone)
    finally:
        db.close()
    assert "database connected url=postgresql://" in log.getvalue()
    _assert_clean("log", log.getvalue())
