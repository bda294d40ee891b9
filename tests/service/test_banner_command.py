"""The daemon's banner names the interpreter it runs under: after `make run` that is `.venv/bin/python`.

Before, it printed `python run.py order …`, which fails outside an activated virtualenv (the dependencies are
only in `.venv`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.service._banner import cli_command as _cli_command

ROOT = Path(__file__).resolve().parents[2]


def test_after_make_run_the_banner_command_is_the_venv_python(monkeypatch: pytest.MonkeyPatch) -> None:
    # What `make run` does: `.venv/bin/python run.py daemon` in the repository.
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "executable", str(ROOT / ".venv" / "bin" / "python"))
    monkeypatch.setattr(sys, "argv", ["run.py", "daemon"])
    assert _cli_command() == ".venv/bin/python run.py"


def test_outside_the_repository_the_paths_are_absolute_and_quoted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", "/opt/my env/bin/python")
    monkeypatch.setattr(sys, "argv", ["-c"])  # not started through run.py: the repository's run.py is named
    assert _cli_command() == f"'/opt/my env/bin/python' {ROOT / 'run.py'}"
