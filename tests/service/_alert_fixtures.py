"""What the alert tests share: a clock the test moves by hand, and the `Alerts` made in a test, closed after it
(not collected; a module assigns the fixtures it uses)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.service._alerts import Alerts

__all__ = ["ManualClock", "clock", "make"]


class ManualClock:
    """Seconds, as `Alerts(clock=...)` reads them; the test sets `now`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make() -> Iterator[list[Alerts]]:
    made: list[Alerts] = []
    yield made
    for alerts in made:
        alerts.close()
