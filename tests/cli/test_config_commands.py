"""check-config / show-config as a user runs them: exit codes, messages, secrets never printed."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from engine.cli import main
from tests.config import keys

ROOT = Path(__file__).resolve().parents[2]
SENTINEL_TOKEN = "SENTINEL-api-token-4f9d2c"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("FREQTRADE__")}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_check_config_valid_example_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "config.example.toml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("configuration valid: exchange=sim mode=dry run pairs=BTC/USDT,ETH/USDT")


def test_check_config_invalid_exits_1_and_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[exchange]\nname = "binanceus"\ntestnet = true\n[risk]\nkill_swich = true\n', encoding="utf-8")
    monkeypatch.setenv("FREQTRADE__API__PORT", "-5")
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "configuration invalid: 3 problem(s)" in err
    assert f"exchange.testnet [file {path}]: binanceus has no testnet" in err
    assert f"risk.kill_swich [file {path}]: Extra inputs are not permitted" in err
    assert "api.port [env FREQTRADE__API__PORT]: Input should be greater than or equal to 0" in err
    assert "fix: " in err


def test_usage_error_exits_2() -> None:
    result = _run("check-config", "--no-such-flag")
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr
    assert _run("no-such-command").returncode == 2


def test_help_on_every_command() -> None:
    for cmd in ("check-config", "show-config", "sim", "orders", "trades"):
        result = _run(cmd, "--help")
        assert result.returncode == 0, (cmd, result.stderr)
        assert result.stdout.startswith("usage: run.py " + cmd)


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; sys.argv=['run.py','--help']\n"
        "from engine.cli import build_parser; build_parser(None)\n"
        "print(sorted(m for m in ('ccxt','pydantic','aiohttp','peewee','pykka') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


def test_show_config_subprocess_redacts_and_logs_env_names_only(tmp_path: Path) -> None:
    env = {
        "FREQTRADE__API__TOKEN": SENTINEL_TOKEN,
        "FREQTRADE__EXCHANGE__SECRET": keys.ed25519_pem(),
        "FREQTRADE__EXCHANGE__KEY": keys.API_KEY,
    }
    result = _run("show-config", str(ROOT / "config.example.toml"), env=env)
    assert result.returncode == 0, result.stderr
    data = tomllib.loads(result.stdout)
    assert data["api"]["token"] == "REDACTED"
    assert data["execution"]["dry_run_wallet"] == {"BTC": 0.05, "USDT": 1000}
    everything = result.stdout + result.stderr
    assert SENTINEL_TOKEN not in everything
    assert keys.API_KEY not in everything
    pem_body = [ln for ln in keys.ed25519_pem().splitlines() if not ln.startswith("-----")]
    assert not any(line in everything for line in pem_body)
    assert "environment overrides detected: FREQTRADE__API__TOKEN" in result.stderr
    assert "FREQTRADE__EXCHANGE__KEY" in result.stderr


def test_show_sensitive_reveals(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREQTRADE__API__TOKEN", SENTINEL_TOKEN)
    assert main(["show-config", "--show-sensitive"]) == 0
    assert f'token = "{SENTINEL_TOKEN}"' in capsys.readouterr().out


def test_show_config_invalid_exits_1(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREQTRADE__EXCHANGE__SECRET", SENTINEL_TOKEN)
    assert main(["show-config"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "exchange.secret" in captured.err
    assert SENTINEL_TOKEN not in captured.err
