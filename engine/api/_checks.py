"""Live trading's gate in `Engine.start`: the start-up checks must pass before anything is started (invariant 5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loguru import logger

from engine.config import Config

__all__ = ["StartupChecksFailed", "require_startup_checks"]


class StartupChecksFailed(RuntimeError):
    """Live mode, and a start-up check failed: the engine did not start (`results` has every verdict)."""

    def __init__(self, failed: Sequence[Any], results: Sequence[Any]) -> None:
        details = "; ".join(f"{r.name}: {r.detail}" for r in failed)
        super().__init__(f"start-up checks failed, live trading refused: {details}")
        self.results = list(results)


def require_startup_checks(config: Config, endpoint: Any) -> None:
    """Run the start-up checks against `endpoint` (the key, the clock, the pairs); log each verdict.

    Raises:
        StartupChecksFailed: a check failed.
    """
    from engine.cli._online import run_online_checks
    from engine.startup import CheckStatus

    results = run_online_checks(config, endpoint)
    failed = [r for r in results if r.status is CheckStatus.FAIL]
    for result in results:
        level = "ERROR" if result.status is CheckStatus.FAIL else "DEBUG"
        logger.bind(check=result.name).log(level, "start-up check {}: {}", result.status.value, result.detail)
    if failed:
        raise StartupChecksFailed(failed, results)
