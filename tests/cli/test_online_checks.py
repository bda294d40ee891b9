"""`check-config --online` against the simulator: every check prints pass/fail and why."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from engine.cli import main
from sim import AccountSpec, SimConfig, Simulator

KEY = "A" * 64
SECRET = "B" * 64


@pytest.fixture
def sim() -> Iterator[Simulator]:
    accounts = [
        AccountSpec(name="main", api_key=KEY, secret=SECRET, balances={"USDT": Decimal(1000)}),
        AccountSpec(name="risky", api_key="C" * 64, secret="D" * 64, enable_withdrawals=True),
    ]
    with Simulator(SimConfig(seed=3, symbols=["BTCUSDT"], accounts=accounts)) as simulator:
        yield simulator


def _live_env(monkeypatch: pytest.MonkeyPatch, sim: Simulator, key: str, secret: str) -> None:
    monkeypatch.setenv("FREQTRADE__EXCHANGE__NAME", "binance")
    monkeypatch.setenv("FREQTRADE__EXCHANGE__REST_URL", sim.urls.rest)
    monkeypatch.setenv("FREQTRADE__EXCHANGE__WS_API_URL", sim.urls.ws_api)
    monkeypatch.setenv("FREQTRADE__EXCHANGE__STREAM_URL", sim.urls.stream)
    monkeypatch.setenv("FREQTRADE__EXCHANGE__KEY", key)
    monkeypatch.setenv("FREQTRADE__EXCHANGE__SECRET", secret)
    monkeypatch.setenv("FREQTRADE__EXCHANGE__PAIR_WHITELIST", "BTC/USDT,DOGE/USDT")


def test_embedded_sim_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--online"]) == 0
    out = capsys.readouterr().out
    assert "[PASS] API key accepted" in out
    assert "online checks: 8 passed or skipped, 0 failed" in out


def test_real_exchange_config_reports_each_failure(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _live_env(monkeypatch, sim, "C" * 64, "D" * 64)
    assert main(["check-config", "--online"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] pair DOGE/USDT: not listed by the exchange" in out
    assert "[PASS] pair BTC/USDT: TRADING" in out
    assert "[FAIL] withdrawals disabled on the key: enableWithdrawals=true" in out


def test_rejected_key(sim: Simulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _live_env(monkeypatch, sim, KEY, "E" * 64)
    assert main(["check-config", "--online"]) == 1
    captured = capsys.readouterr()
    assert "[FAIL] API key accepted: AuthFailed" in captured.out
    assert "E" * 64 not in captured.out + captured.err
