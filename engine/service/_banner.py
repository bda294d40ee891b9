"""What the daemon's start banner says to paste: this program's CLI as the operator can run it here (stdlib only)."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path

__all__ = ["cli_command", "shown_path"]

_ROOT = Path(__file__).resolve().parents[2]  # where run.py is


def cli_command() -> str:
    """The command line that runs this program's CLI again, as the operator can paste it in this directory.

    It names the interpreter running now: after `make run` that is `.venv/bin/python`, the only one with the
    dependencies installed, so a bare `python run.py …` would fail.
    """
    script = sys.argv[0] if sys.argv and sys.argv[0].endswith("run.py") else str(_ROOT / "run.py")
    return f"{shown_path(sys.executable or 'python')} {shown_path(script)}"


def shown_path(path: str) -> str:
    # Relative to the working directory when below it (".venv/bin/python"), else absolute; quoted for the shell.
    # A cosmetic line: a working directory that is gone (OSError) must not fail a start that succeeded.
    try:
        absolute = Path(os.path.abspath(path))
        with contextlib.suppress(ValueError):
            return shlex.quote(str(absolute.relative_to(Path.cwd())))
    except OSError:
        return shlex.quote(path)
    return shlex.quote(str(absolute))
