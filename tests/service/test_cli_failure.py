"""The CLI's refusal lines carry the way forward: the request a conflict names, the id of a request still executing."""

from __future__ import annotations

import io

import pytest

from engine.service._commands import EXIT_REFUSED, EXIT_UNREACHABLE, _failure


def test_a_conflict_prints_the_request_in_the_way(capsys: pytest.CaptureFixture[str]) -> None:
    data = {"error": "conflict", "message": "a buy request on BTC/USDT is still executing",
            "details": {"request_id": "r-in-the-way"}}  # fmt: skip
    assert _failure(409, data, io.StringIO(), as_json=False) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "conflict: a buy request on BTC/USDT is still executing" in err and "request_id=r-in-the-way" in err


def test_an_engine_timeout_prints_the_waiting_requests_id(capsys: pytest.CaptureFixture[str]) -> None:
    data = {"error": "engine_timeout", "message": "the engine did not answer in time", "request_id": "r-waiting"}
    assert _failure(504, data, io.StringIO(), as_json=False) == EXIT_UNREACHABLE
    assert "request_id=r-waiting" in capsys.readouterr().err
