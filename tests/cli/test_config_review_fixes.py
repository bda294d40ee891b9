"""check-config and show-config on values the daemon would crash on or that carry a secret in a URL.

Before: `logging.rotation = "bogus"` with a log file made check-config crash with loguru's traceback, and a
database password given as `?password=` passed and was printed by show-config.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main

SECRET = "Hunter2Secret"


def test_a_rotation_loguru_refuses_is_listed_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREQTRADE__LOGGING__FILE", str(tmp_path / "engine.log"))
    monkeypatch.setenv("FREQTRADE__LOGGING__ROTATION", "bogus")
    assert main(["check-config"]) == 1
    err = capsys.readouterr().err
    assert "configuration invalid: 1 problem(s)" in err
    assert "logging.rotation [env FREQTRADE__LOGGING__ROTATION]: not a value loguru understands" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["check-config", "show-config"])
def test_a_password_query_parameter_is_refused_and_never_printed(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREQTRADE__DATABASE__URL", f"postgresql://bot@db.example/engine?password={SECRET}")
    assert main([command]) == 1
    captured = capsys.readouterr()
    assert "database.url" in captured.err
    assert SECRET not in captured.out + captured.err


def test_show_config_masks_the_webhook_url(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREQTRADE__ALERTS__WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/SlackSecret")
    assert main(["show-config"]) == 0
    out = capsys.readouterr().out
    assert "SlackSecret" not in out and 'webhook_url = "https://hooks.slack.com/REDACTED"' in out


@pytest.mark.parametrize("url", ["sqlite:///data/engine.sqlite3", "sqlite:////tmp/bexec/engine.sqlite3"])
def test_show_config_prints_a_sqlite_url_as_configured(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rebuilt by the password mask, `sqlite:///data/x` came out `sqlite:/data/x`, which check-config refuses.
    monkeypatch.setenv("FREQTRADE__DATABASE__URL", url)
    assert main(["show-config"]) == 0
    assert f'url = "{url}"' in capsys.readouterr().out


@pytest.mark.parametrize("level", ["debug", "Warning"])
def test_the_log_level_flag_takes_any_case(level: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--log-level", level]) == 0


def test_an_unknown_log_level_is_a_usage_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check-config", "--log-level", "loud"])
    assert exited.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def _log_file_cases(tmp_path: Path) -> dict[str, tuple[str, str]]:
    (tmp_path / "plain").write_text("")
    return {
        "a directory": (str(tmp_path), "is a directory"),
        "below a regular file": (str(tmp_path / "plain" / "x.log"), "is not a directory"),
        # Passes the validator (/proc is a directory) but its directory cannot be created: setup_logging fails.
        "an uncreatable directory": ("/proc/nope/x.log", "cannot open the log file /proc/nope/x.log"),
    }


@pytest.mark.parametrize("case", ["a directory", "below a regular file", "an uncreatable directory"])
def test_an_unusable_log_file_is_listed_not_a_crash(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: IsADirectoryError / FileNotFoundError traceback from setup_logging, exit 1 without any problem listed.
    value, message = _log_file_cases(tmp_path)[case]
    if value.startswith("/proc/") and not Path("/proc/self").exists():
        pytest.skip("needs Linux /proc")
    monkeypatch.setenv("FREQTRADE__LOGGING__FILE", value)
    assert main(["check-config"]) == 1
    err = capsys.readouterr().err
    assert "configuration invalid: 1 problem(s)" in err
    assert "logging.file [env FREQTRADE__LOGGING__FILE]:" in err and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("port", ["notaport", "99999", "-1"])
def test_a_postgresql_url_with_a_bad_port_is_refused(
    port: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: accepted (urlsplit checks the port only when it is read); the daemon then failed on it at start.
    monkeypatch.setenv("FREQTRADE__DATABASE__URL", f"postgresql://bot:{SECRET}@127.0.0.1:{port}/engine")
    assert main(["check-config"]) == 1
    err = capsys.readouterr().err
    assert "database.url [env FREQTRADE__DATABASE__URL]: the port must be a number from 0 to 65535" in err
    assert SECRET not in err and "Traceback" not in err


def test_a_postgresql_url_with_a_port_is_accepted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREQTRADE__DATABASE__URL", "postgresql://bot@127.0.0.1:6543/engine")
    assert main(["check-config"]) == 0
