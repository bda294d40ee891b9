"""A start that fails leaves the database lock free and the engine's own simulator stopped, whatever failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2
import pykka
import pytest

import engine.api._wiring as wiring
from engine.api import Engine
from engine.config import Config
from sim import Simulator

pytestmark = pytest.mark.timeout(120)

NO_STREAMS = {"user_data": False, "market_data": False}


def _config(**stream: Any) -> Config:
    return Config.model_validate({"stream": {**NO_STREAMS, **stream}, "exchange": {"pair_whitelist": ["BTC/USDT"]}})


def test_a_start_failing_on_its_settings_lets_go_of_the_lock_and_stops_its_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the lock was taken before the settings were built, outside the start's clean-up: a bad setting
    # left it held for the rest of the process (no engine could start on the database) and the simulator running.
    made: list[Simulator] = []
    real = wiring.make_embedded_sim

    def recording(config: Config) -> Simulator:
        made.append(real(config))
        return made[-1]

    monkeypatch.setattr(wiring, "make_embedded_sim", recording)
    url, spool = f"sqlite:///{tmp_path}/engine.sqlite3", tmp_path / "spool.jsonl"
    # Valid as configuration, refused by the stream settings (below the minimum reconnect backoff).
    with pytest.raises(ValueError, match="backoff"):
        Engine.start(_config(user_data=True, max_reconnect_backoff_s="0.1"), database_url=url, spool_path=spool)
    assert len(made) == 1 and made[0]._thread is None  # stopped: its server thread is gone
    assert pykka.ActorRegistry.get_all() == []

    engine = Engine.start(_config(), database_url=url, spool_path=spool)  # the lock was let go of
    engine.stop(graceful=False)


@pytest.mark.postgres
def test_an_engine_does_not_start_when_its_lock_cannot_be_taken(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the lock's connection failing was a warning, and the engine started without it once its own
    # connections got through: a second engine could then start on the same database.
    real, calls = psycopg2.connect, []

    def first_fails(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        if len(calls) == 1:
            raise psycopg2.OperationalError("connection refused (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(psycopg2, "connect", first_fails)
    with pytest.raises(RuntimeError, match=r"cannot take the database lock.*injected.*does not start"):
        Engine.start(_config(), database_url=pg_url, spool_path=tmp_path / "spool.jsonl")
    assert pykka.ActorRegistry.get_all() == []
