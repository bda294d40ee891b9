"""Invariant 6: no secret in logs, command output, the database or error messages — checked with sentinels.

The engine runs live against the simulator (as if it were Binance) with sentinel credentials; orders succeed,
fail and time out; then every captured log line, everything printed to stdout and stderr, every file the engine
wrote (the database with its WAL, the spool) and every error message are searched for the sentinels and their
URL-encoded forms.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from loguru import logger

from engine.api import Engine, EngineEvent
from engine.config import Config
from engine.logs import redact, setup_logging
from sim import AccountSpec, FaultSpec, SimConfig, Simulator

API_KEY = "SENTINELkey" + "K" * 53
SECRET = "SENTINELsecret" + "S" * 50
SENTINELS = [API_KEY, SECRET, quote(API_KEY, safe=""), quote(SECRET, safe="")]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    account = AccountSpec(api_key=API_KEY, secret=SECRET)
    with Simulator(
        SimConfig(seed=9, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, accounts=[account])
    ) as simulator:
        yield simulator


def test_sentinel_secrets_never_leak(sim: Simulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log = io.StringIO()
    redact.clear()
    config = Config.model_validate(
        {
            "exchange": {
                "name": "binance",
                "rest_url": sim.urls.rest,
                "ws_api_url": sim.urls.ws_api,
                "stream_url": sim.urls.stream,
                "key": API_KEY,
                "secret": SECRET,
                "pair_whitelist": ["BTC/USDT"],
                "request_timeout_s": "1",
            },
            "execution": {"dry_run": False, "limit_timeout_s": "600"},
            "logging": {"level": "DEBUG"},
        }
    )
    setup_logging(level="DEBUG", sink=log.write, secrets=config.secret_values())
    events: list[EngineEvent] = []
    database = tmp_path / "engine.sqlite3"
    engine = Engine.start(config, database_url=f"sqlite:///{database}", spool_path=tmp_path / "spool.jsonl")
    try:
        engine.subscribe(events.append)
        ok = engine.place_order("BTC/USDT", "buy", "0.001", "59000").result(timeout=20)
        sim.control.add_fault(
            FaultSpec(
                kind="http_error",
                target="POST /api/v3/order",
                count=1,
                status=400,
                code=-1022,
                msg="Signature for this request is not valid.",
                execute=False,
            )
        )
        refused = engine.place_order("BTC/USDT", "sell", "0.001", "61000").result(timeout=20)
        messages = [str(ok), str(refused)]
    finally:
        engine.stop()
        logger.remove()
        redact.clear()
    messages += [e.message for e in events] + [repr(e) for e in events]
    out, err = capfd.readouterr()  # file descriptors 1 and 2: what any library printed, not only the log
    texts = {
        "log": log.getvalue(),
        "messages": "\n".join(messages),
        "stdout": out,
        "stderr": err,
        # The database with its -wal/-shm files, and the spool: every file the engine wrote.
        **{path.name: path.read_bytes().decode("latin-1") for path in tmp_path.iterdir() if path.is_file()},
    }
    assert database.name in texts
    assert "POST /api/v3/order" in texts["log"] or "create_order" in texts["log"]  # the log did capture activity
    for where, text in texts.items():
        for sentinel in SENTINELS:
            assert sentinel not in text, f"secret leaked into the {where}"
