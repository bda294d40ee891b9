"""check-config refuses what the daemon would refuse or crash on, and env names that collide by case.

Before: a short `api.token` passed check-config and failed the daemon's start; `logging.rotation = "bogus"`
made check-config crash with loguru's traceback; `FREQTRADE__EXECUTION__DRY_RUN=true` beside
`Freqtrade__Execution__Dry_Run=false` silently resolved to live mode.
"""

from __future__ import annotations

import pytest

from engine.config import resolve_config
from engine.config._models import MIN_API_TOKEN_CHARS
from engine.service import _token


def test_the_config_and_the_daemon_agree_on_the_shortest_token() -> None:
    assert MIN_API_TOKEN_CHARS == _token._MIN_TOKEN_CHARS


def test_a_short_api_token_is_a_config_problem_that_does_not_show_it() -> None:
    short = "x7Q" * 5  # 15 characters
    loaded, problems = resolve_config(None, {"FREQTRADE__API__TOKEN": short})
    assert loaded is None
    assert [p.path for p in problems] == ["api.token"]
    assert f"at least {MIN_API_TOKEN_CHARS} characters" in problems[0].message
    assert short not in str(problems[0]) and "15" not in problems[0].message


@pytest.mark.parametrize("token", ["x" * MIN_API_TOKEN_CHARS, ""])
def test_a_long_enough_or_empty_token_is_accepted(token: str) -> None:
    loaded, problems = resolve_config(None, {"FREQTRADE__API__TOKEN": token})
    assert not problems and loaded is not None
    # Empty means "not set", as the daemon reads it: the token then comes from api.token_path.
    assert (loaded.config.api.token is None) == (token == "")


@pytest.mark.parametrize(
    ("key", "value"),
    [("ROTATION", "bogus"), ("ROTATION", ""), ("RETENTION", "bogus"), ("RETENTION", "10")],
)
def test_log_rotation_and_retention_loguru_refuses_are_config_problems(key: str, value: str) -> None:
    loaded, problems = resolve_config(None, {f"FREQTRADE__LOGGING__{key}": value})
    assert loaded is None
    assert [p.path for p in problems] == [f"logging.{key.lower()}"]
    assert "expected" in problems[0].message


@pytest.mark.parametrize(
    ("key", "value"),
    [("ROTATION", "50 MB"), ("ROTATION", "1 week"), ("ROTATION", "00:00"), ("RETENTION", "14 days")],
)
def test_log_rotation_and_retention_loguru_accepts_pass(key: str, value: str) -> None:
    loaded, problems = resolve_config(None, {f"FREQTRADE__LOGGING__{key}": value})
    assert not problems and loaded is not None


def test_one_key_set_twice_in_different_case_is_a_config_problem() -> None:
    loaded, problems = resolve_config(
        None, {"FREQTRADE__EXECUTION__DRY_RUN": "true", "Freqtrade__Execution__Dry_Run": "false"}
    )
    assert loaded is None
    assert [p.path for p in problems] == ["execution.dry_run"]
    assert "FREQTRADE__EXECUTION__DRY_RUN" in problems[0].message
    assert "Freqtrade__Execution__Dry_Run" in problems[0].message


def test_same_value_twice_and_secret_file_twice_are_refused_too() -> None:
    _, problems = resolve_config(
        None, {"FREQTRADE__EXECUTION__DRY_RUN": "true", "freqtrade__execution__dry_run": "true"}
    )
    assert [p.path for p in problems] == ["execution.dry_run"]
    _, problems = resolve_config(
        None,
        {
            "FREQTRADE__EXECUTION__DRY_RUN_WALLET__BTC": "1",
            "FREQTRADE__EXECUTION__DRY_RUN_WALLET__btc": "2",
        },
    )
    assert [p.path for p in problems] == ["execution.dry_run_wallet.btc"]
