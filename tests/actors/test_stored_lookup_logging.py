"""A stored-order lookup that fails while the database is down is tried again: each failed attempt is a WARNING
that says what was looked up, that it is tried again and why it failed (a pykka timeout's own text is only
"10.0 seconds"); only the last attempt's failure is an ERROR (its report is dropped, with an alert)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pykka
import pytest
from loguru import logger

from actors._tracked import TrackedMixin
from actors.pair import PairActor


class _TimedOut:
    def get(self, timeout: float | None = None) -> Any:
        raise pykka.Timeout(f"{timeout} seconds")


class _Store:
    def get_order(self, _cid: str) -> _TimedOut:
        return _TimedOut()


@pytest.fixture
def lines() -> Iterator[list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    sink = logger.add(lambda m: seen.append((m.record["level"].name, m.record["message"])), level="DEBUG")
    try:
        yield seen
    finally:
        logger.remove(sink)


def _owner(alerts: list[tuple[str, str]]) -> Any:
    ticker = SimpleNamespace(call_later=lambda _ms, _fn: None)
    return SimpleNamespace(
        _store=SimpleNamespace(proxy=_Store()),
        _book=SimpleNamespace(pair="BTC/USDT"),
        _home=None,
        _self=None,
        _ticker=ticker,
        _alerts=lambda key, message: alerts.append((key, message)),
    )


def _lookup(where: str, owner: Any, attempt: int) -> None:
    command = SimpleNamespace(client_order_id="bx-cid-1", sighting=None)
    if where == "pair":
        PairActor._lookup_stored(owner, command, attempt)  # type: ignore[arg-type]
    else:
        TrackedMixin._lookup_stored(owner, owner._book, command, attempt)  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["pair", "tracked"])
def test_a_failed_lookup_that_is_retried_is_a_clear_warning(where: str, lines: list[tuple[str, str]]) -> None:
    alerts: list[tuple[str, str]] = []
    _lookup(where, _owner(alerts), 1)
    [(level, message)] = [line for line in lines if "stored order lookup" in line[1]]
    assert level == "WARNING"
    assert "bx-cid-1" in message and "attempt 1 of 60" in message and "tried again in 5 s" in message
    assert "did not answer within" in message and "\n" not in message
    assert alerts == []


@pytest.mark.parametrize("where", ["pair", "tracked"])
def test_the_last_failed_attempt_is_an_error_with_an_alert(where: str, lines: list[tuple[str, str]]) -> None:
    alerts: list[tuple[str, str]] = []
    _lookup(where, _owner(alerts), 60)
    [(level, message)] = [line for line in lines if "stored order lookup" in line[1]]
    assert level == "ERROR" and "last attempt (60 of 60)" in message and "dropped" in message
    [(key, alert)] = alerts
    assert key == "fills_missing" and "did not answer within" in alert
