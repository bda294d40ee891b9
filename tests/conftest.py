"""Suite-wide fixtures: deterministic hypothesis, a clean pykka registry and logging, and the PostgreSQL plugin."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from importlib.util import find_spec

import pytest
from hypothesis import HealthCheck, settings

# Deterministic by default (same examples every run, no example database on disk); `make chaos` or a developer
# can explore with HYPOTHESIS_PROFILE=explore, and hypothesis prints the seed/blob needed to reproduce a failure.
settings.register_profile(
    "default",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", derandomize=False, deadline=None, print_blob=True, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

pytest_plugins = ["tests.pg_fixtures"] if find_spec("tests.pg_fixtures") is not None else []


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """Stop every pykka actor a test left running (actor threads are non-daemon and would hang the run)."""
    yield
    if find_spec("pykka") is not None:
        import pykka

        pykka.ActorRegistry.stop_all(timeout=10)


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """A test that set up the engine's logging (a CLI command, the daemon in-process) does not leave it for the
    next ones: its sink writes to whatever `sys.stderr` is, so a later test's captured stderr got its lines."""
    from loguru import logger

    before = set(logger._core.handlers)  # type: ignore[attr-defined]  # loguru has no public snapshot
    yield
    if set(logger._core.handlers) != before:  # type: ignore[attr-defined]
        logger.remove()
        logger.add(sys.__stderr__, level="INFO")  # to the process's stderr (captured per test by pytest)


@pytest.fixture(autouse=True)
def _clean_freqtrade_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without FREQTRADE__* variables from the developer's shell."""
    for name in list(os.environ):
        if name.upper().startswith("FREQTRADE__"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _seeded_jitter(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """An engine started without a jitter seed draws one at random (`engine.api._wiring.draw_jitter_seed`): here from
    a generator seeded by the test's name, so its retry and reconnect backoffs are the same every run (the seed is
    logged at start: "engine starting: jitter seed N")."""
    import random
    import zlib

    import engine.api._wiring as wiring

    rng = random.Random(zlib.crc32(b"jitter " + request.node.nodeid.encode()))
    monkeypatch.setattr(wiring, "draw_jitter_seed", lambda: rng.randrange(2**32))


@pytest.fixture(autouse=True)
def _seeded_id_namespaces(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """A new database's client order id namespace is random (`db._migrations.new_namespace`): drawn here from a
    generator seeded by the test's name, so a test's client order ids are the same every run."""
    import random
    import zlib

    from db import _migrations

    rng = random.Random(zlib.crc32(request.node.nodeid.encode()))
    monkeypatch.setattr(_migrations, "new_namespace", lambda: f"{rng.getrandbits(64):016x}")


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log line (with its bound context) written while the test runs, at every level."""
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="TRACE", format="{level} {message} {extra} {exception}")
    yield lines
    logger.remove(sink)
