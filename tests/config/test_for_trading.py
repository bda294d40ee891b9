"""What only running the engine needs: live keys and a SQLite database it can create (`resolve_config(for_trading=…)`).

Before: `run.py orders`/`trades`/`status`/`order` validated a live configuration as for trading and refused to run
without exchange.key and exchange.secret, which they never use; and check-config said "valid" for a SQLite database
in a directory that cannot be created (`sqlite:////proc/nonexistent/engine.sqlite3`), on which the daemon then died
with a FileNotFoundError traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.config import resolve_config

LIVE = {"FREQTRADE__EXCHANGE__NAME": "binance", "FREQTRADE__EXECUTION__DRY_RUN": "false"}
NEEDS_KEYS = (
    "live mode (execution.dry_run = false) on a real exchange needs exchange.key and exchange.secret: set them in the "
    "file (key, secret_file = a path) or with FREQTRADE__EXCHANGE__KEY and FREQTRADE__EXCHANGE__SECRET_FILE (or "
    "FREQTRADE__EXCHANGE__SECRET); or keep dry_run = true"
)
PROC = pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")


def test_a_live_configuration_without_keys_is_refused_for_trading() -> None:
    loaded, problems = resolve_config(None, LIVE)
    assert loaded is None
    assert [(p.path, p.message) for p in problems] == [("exchange.key", NEEDS_KEYS)]


def test_a_live_configuration_without_keys_loads_for_reading() -> None:
    loaded, problems = resolve_config(None, LIVE, for_trading=False)
    assert not problems and loaded is not None
    assert loaded.config.execution.dry_run is False and loaded.config.exchange.secret is None


def test_reading_still_refuses_what_is_wrong_with_the_configuration() -> None:
    loaded, problems = resolve_config(None, {**LIVE, "FREQTRADE__EXCHANGE__KEY": "short"}, for_trading=False)
    assert loaded is None
    assert [p.path for p in problems] == ["exchange.key"]


@PROC
def test_a_sqlite_directory_that_cannot_be_created_is_a_problem_for_trading() -> None:
    env = {"FREQTRADE__DATABASE__URL": "sqlite:////proc/nonexistent/engine.sqlite3"}
    loaded, problems = resolve_config(None, env)
    assert loaded is None
    assert [(p.path, p.source) for p in problems] == [("database.url", "env FREQTRADE__DATABASE__URL")]
    assert problems[0].message == (
        "the directory /proc/nonexistent does not exist and cannot be created in /proc: No such file or directory"
    )
    # Reading commands say what they find when they open it (no SQLite database file at …).
    assert resolve_config(None, env, for_trading=False)[1] == []


@PROC
def test_a_sqlite_directory_that_takes_no_files_is_a_problem() -> None:
    _, problems = resolve_config(None, {"FREQTRADE__DATABASE__URL": "sqlite:////proc/engine.sqlite3"})
    assert [p.message for p in problems] == [
        "the database's directory /proc does not let files be created in it: No such file or directory"
    ]


def test_a_sqlite_path_under_a_file_or_that_is_a_directory_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    _, problems = resolve_config(None, {"FREQTRADE__DATABASE__URL": f"sqlite:///{tmp_path}/afile/engine.sqlite3"})
    assert [p.message for p in problems] == [f"{tmp_path}/afile is not a directory, so {tmp_path}/afile/engine.sqlite3 "
                                             "cannot be created"]  # fmt: skip
    _, problems = resolve_config(None, {"FREQTRADE__DATABASE__URL": f"sqlite:///{tmp_path}"})
    assert [p.path for p in problems] == ["database.url"] and "is a directory" in problems[0].message


def test_a_sqlite_directory_still_to_be_created_is_fine_and_the_check_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/not/yet/engine.sqlite3"
    loaded, problems = resolve_config(None, {"FREQTRADE__DATABASE__URL": url})
    assert not problems and loaded is not None
    assert list(tmp_path.iterdir()) == []


@PROC
def test_check_config_reports_the_sqlite_directory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FREQTRADE__DATABASE__URL", "sqlite:////proc/nonexistent/engine.sqlite3")
    assert main(["check-config"]) == 1
    captured = capsys.readouterr()
    assert "database.url [env FREQTRADE__DATABASE__URL]: the directory /proc/nonexistent does not exist" in captured.err
    assert "configuration valid" not in captured.out
