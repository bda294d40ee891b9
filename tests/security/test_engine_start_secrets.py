"""`Engine.start` registers its configuration's secrets with the log redactor: a host application that formats its
logs with `engine.logs.setup_logging` (the README's advice) has them masked, as the daemon does. Before, only the
daemon registered them."""

from __future__ import annotations

from pathlib import Path

from engine.api import Engine
from engine.clock import ManualClock
from engine.config import Config
from engine.logs import redact

SENTINEL = "SENTINEL-WEBHOOK-PATH-5e2f"


def test_the_configurations_secrets_are_masked_once_the_engine_starts(tmp_path: Path) -> None:
    config = Config.model_validate({"alerts": {"webhook_url": f"https://hooks.example.com/{SENTINEL}"}})
    assert SENTINEL in redact(f"posting to /{SENTINEL}")  # not registered yet (a fresh process would not know it)
    engine = Engine.start(config, clock=ManualClock(), database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                          spool_path=tmp_path / "spool.jsonl")  # fmt: skip
    try:
        assert SENTINEL not in redact(f"posting to /{SENTINEL}")
    finally:
        engine.stop(graceful=False)
