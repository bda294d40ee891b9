"""`run.py daemon --log-level` takes the same values as check-config's.

Before, the daemon defined its own flag without normalisation: `--log-level debug` (or any unknown level) passed
the parser and ended in loguru's `ValueError: Level 'debug' does not exist` traceback, exit 1.
"""

from __future__ import annotations

import pytest

from engine.cli import build_parser


@pytest.mark.parametrize(("given", "parsed"), [("debug", "DEBUG"), ("Warning", "WARNING"), ("TRACE", "TRACE")])
def test_the_daemon_takes_a_log_level_in_any_case(given: str, parsed: str) -> None:
    args = build_parser("daemon").parse_args(["daemon", "--log-level", given])
    assert args.log_level == parsed


def test_an_unknown_daemon_log_level_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser("daemon").parse_args(["daemon", "--log-level", "bogus"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --log-level: invalid choice" in err and "Traceback" not in err
