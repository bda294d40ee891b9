"""The daemon and the CLI client as real subprocesses, synchronised on their output lines (never on sleeps)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
RUN = str(ROOT / "run.py")
START_TIMEOUT_S = 90.0
_LISTENING = re.compile(r"control API listening on (http://\S+)")


class Lines:
    """Collects a pipe's lines in a thread; `wait_for` blocks until a matching line arrives (bounded)."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<EOF>")
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        """The first line matching `predicate`; fails on timeout or end of output."""
        found: list[str] = []

        def ready() -> bool:
            found[:] = [ln for ln in self.lines if predicate(ln)]
            return bool(found) or "<EOF>" in self.lines

        with self._cond:
            self._cond.wait_for(ready, timeout)
        assert found, "no matching line; output so far:\n" + "\n".join(self.lines[-40:])
        return found[0]

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the end of the output."""
        self._thread.join(timeout)

    @property
    def text(self) -> str:
        """Everything read so far."""
        with self._cond:
            return "\n".join(self.lines)


def daemon_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a daemon (or client) in `workdir`: no inherited FREQTRADE__* settings."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FREQTRADE__")}
    env.update(
        {
            "FREQTRADE__DATABASE__URL": f"sqlite:///{workdir}/engine.sqlite3",
            "FREQTRADE__API__PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class DaemonProcess:
    """`python run.py daemon` in `workdir`; `url` is set once it prints where its API listens."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = workdir
        self.env = daemon_env(workdir, **env)
        self.proc = subprocess.Popen(
            [sys.executable, RUN, "daemon"],
            cwd=workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = Lines(self.proc.stdout)
        self.err = Lines(self.proc.stderr)
        line = self.out.wait_for(lambda ln: bool(_LISTENING.search(ln)) or "not started" in ln, START_TIMEOUT_S)
        match = _LISTENING.search(line)
        assert match, f"daemon did not start:\n{self.out.text}\n{self.err.text[-3000:]}"
        self.url = match.group(1)

    @property
    def token(self) -> str:
        """The generated token (read from its file, as a client would)."""
        return (self.workdir / "data" / "api-token").read_text().strip()

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send a signal."""
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the exit; the exit code."""
        code = self.proc.wait(timeout)
        self.out.join()
        self.err.join()
        return code

    def kill(self) -> None:
        """Make sure the process is gone (teardown after a failed test)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def cli(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a CLI client command in the daemon's working directory."""
    return subprocess.run(
        [sys.executable, RUN, *args],
        cwd=workdir,
        env=daemon_env(workdir, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def spawn_cli(workdir: Path, *args: str) -> tuple[subprocess.Popen[str], Lines, Lines]:
    """Start a long-running CLI command (``watch``); its stdout and stderr lines."""
    proc = subprocess.Popen(
        [sys.executable, RUN, *args],
        cwd=workdir,
        env=daemon_env(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    return proc, Lines(proc.stdout), Lines(proc.stderr)


def interrupt(proc: subprocess.Popen[str]) -> int:
    """Ctrl-C a CLI command and return its exit code."""
    proc.send_signal(signal.SIGINT)
    return proc.wait(30)
