"""The daemon's look at what an earlier run left open, before the engine starts: it never migrates (the engine does,
knowing its spool), and it says what it found (found by the second and third diff reviews of session 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from db import LATEST_VERSION, connect, current_version, migrate
from engine.service._daemon import _leftover_open_orders, _StartFailed


def test_a_new_database_is_left_for_the_engine_to_create(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/new.sqlite3"
    assert _leftover_open_orders(url) == 0
    assert "database: new: created at start" in capsys.readouterr().out
    handle = connect(url, apply_migrations=False)
    try:
        assert current_version(handle) == 0  # nothing migrated before the engine's own start
    finally:
        handle.close()


def test_an_older_schema_is_named_and_left_for_the_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/old.sqlite3"
    handle = connect(url, apply_migrations=False)
    try:
        migrate(handle, target=LATEST_VERSION - 1)
    finally:
        handle.close()
    assert _leftover_open_orders(url) == 0
    assert f"schema {LATEST_VERSION - 1}, made by an older engine" in capsys.readouterr().out


def test_a_newer_schema_is_refused_naming_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/newer.sqlite3"
    handle = connect(url)
    try:
        handle.execute_sql(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, 'from the future', ?)",
            (LATEST_VERSION + 1, "2030-01-01T00:00:00.000000+00:00"),
        )
    finally:
        handle.close()
    with pytest.raises(_StartFailed, match=r"newer\.sqlite3.*newer than this engine knows"):
        _leftover_open_orders(url)
