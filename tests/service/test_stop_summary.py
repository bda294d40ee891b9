"""The daemon's stop summary: what it adds and says when open orders end with a simulated exchange it started."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loguru import logger

from engine.service._stop_summary import ended_with_simulator, stop_line


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{level} {message}")
    yield lines
    logger.remove(sink)


def test_kept_orders_on_its_own_simulator_are_said_to_end_with_it(warnings: list[str]) -> None:
    summary = ended_with_simulator({"canceled": 0, "open": 2}, on_shutdown="keep", own_simulator=True)
    assert summary == {"canceled": 0, "open": 2, "ended_with_simulator": 2}
    assert stop_line(summary, "keep") == (
        "shutdown complete: on_shutdown=keep, canceled=0, left open=2, ended with the simulator=2"
    )
    assert len(warnings) == 1 and warnings[0].startswith("WARNING daemon stop: 2 open order(s) kept"), warnings


def test_nothing_kept_is_counted_without_a_warning(warnings: list[str]) -> None:
    summary = ended_with_simulator({"canceled": 0, "open": 0}, on_shutdown="keep", own_simulator=True)
    assert summary["ended_with_simulator"] == 0 and warnings == []


@pytest.mark.parametrize(("mode", "own"), [("keep", False), ("cancel", True), ("cancel", False)])
def test_nothing_is_said_otherwise(warnings: list[str], mode: str, own: bool) -> None:
    # A simulator (or venue) the daemon did not start keeps the orders; under cancel the shutdown canceled them
    # (what stayed open is `left open`, as on any exchange).
    summary = ended_with_simulator({"canceled": 1, "open": 1}, on_shutdown=mode, own_simulator=own)
    assert summary == {"canceled": 1, "open": 1} and warnings == []
    assert stop_line(summary, mode) == f"shutdown complete: on_shutdown={mode}, canceled=1, left open=1"


def test_the_line_names_the_other_counts_only_when_there() -> None:
    line = stop_line({"open": 1, "withdrawn": 2, "unanswered": 1}, "cancel")
    assert line == (
        "shutdown complete: on_shutdown=cancel, canceled=0, left open=1, requests withdrawn=2, "
        "pairs that did not answer=1"
    )
