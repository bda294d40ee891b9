"""The README's quick start, run as written against `make run`'s defaults (the embedded simulator): every command
succeeds and the first order ends `filled`, as the README says — not `canceled` with an incomplete fallback, as a
limit far below the simulated market did."""

from __future__ import annotations

import json
import re
import shlex
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service._proc import ROOT, DaemonProcess, cli, interrupt, spawn_cli

pytestmark = pytest.mark.timeout(120)


def _quick_start_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    lines = [ln.split("#", 1)[0].strip() for block in blocks for ln in block.splitlines()]
    return [shlex.split(ln)[2:] for ln in lines if ln.startswith(".venv/bin/python run.py ")]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path)  # the defaults `make run` has, on a free port
    yield proc
    proc.signal(signal.SIGINT)
    try:
        assert proc.wait() == 0
    finally:
        proc.kill()


def test_the_readme_quick_start_works_and_its_first_order_fills(daemon: DaemonProcess) -> None:
    commands = _quick_start_commands()
    assert sorted(c[0] for c in commands) == ["balances", "order", "status", "watch"], commands
    # `watch` runs on (in its own terminal) while the others are typed, in the README's order.
    watcher, out, err = spawn_cli(daemon.workdir, *next(c for c in commands if c[0] == "watch"), "--json")
    try:
        err.wait_for(lambda ln: ln.startswith("watching order events from"))
        request_id = ""
        for command in [c for c in commands if c[0] != "watch"]:
            done = cli(daemon.workdir, *command, *(["--json"] if command[0] == "order" else []))
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            if command[0] == "order":
                request_id = json.loads(done.stdout)["order"]["request_id"]
        line = out.wait_for(lambda ln: '"kind": "done"' in ln and request_id in ln, timeout=60)
    finally:
        assert interrupt(watcher) == 0
    trade = json.loads(line)["trade"]
    assert trade["status"] == "filled" and trade["filled"] == trade["requested"], trade
