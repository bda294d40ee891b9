"""The README's Engine API example, run as written (in a fresh directory, on the embedded defaults): a strategy
author's first copy-paste must work, and its order must reach its end (`done`) as the comments say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service._proc import ROOT

pytestmark = pytest.mark.timeout(120)


def _engine_api_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Engine API", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return block


def test_the_readme_engine_api_example_runs_and_its_order_is_done(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(_engine_api_example(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout  # the example prints from the caller's thread and the listener's: lines may interleave
    assert "True" in out and "None" in out, out[-3000:]  # accepted, no refusal reason
    assert "kind=<EventKind.DONE: 'done'>" in out and "status=<TradeStatus.FILLED: 'filled'>" in out, out[-3000:]
    assert (tmp_path / "data").is_dir()  # SQLite under ./data, as the comment says
