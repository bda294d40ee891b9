"""`logging.file` below a directory the engine may not look into is a config problem, not an OSError."""

from __future__ import annotations

import os
import pathlib
from pathlib import Path

import pytest

from engine.config import resolve_config

ENV = "FREQTRADE__LOGGING__FILE"


def _log_file_problems(value: Path) -> list[tuple[str, str, str]]:
    loaded, problems = resolve_config(None, {ENV: str(value)})
    assert loaded is None
    return [(p.path, p.source, p.message) for p in problems]


def test_a_log_file_below_a_directory_that_refuses_stat_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: PermissionError escaped the validator. Patched rather than chmod so it also runs as root,
    # where the kernel skips permission checks.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_stat = pathlib.Path.stat

    def stat(self: pathlib.Path, *, follow_symlinks: bool = True) -> os.stat_result:
        if self.is_relative_to(locked) and self != locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(pathlib.Path, "stat", stat)
    target = locked / "logs" / "engine.log"
    [(path, source, message)] = _log_file_problems(target)
    assert (path, source) == ("logging.file", f"env {ENV}")
    assert message == f"cannot check {target}: Permission denied; make its directory accessible or choose another file"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root bypasses permission checks")
def test_a_log_file_below_a_chmod_000_directory_is_a_problem(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        [(path, _, message)] = _log_file_problems(locked / "logs" / "engine.log")
    finally:
        locked.chmod(0o700)
    assert path == "logging.file"
    assert "Permission denied" in message
