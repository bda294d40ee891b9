"""One engine per database: the instance lock refuses a second holder and dies with its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from db import DatabaseInUseError, acquire_instance_lock
from db._lock import holder_text

_ROOT = Path(__file__).resolve().parents[2]
_HOLDER = """
import sys
from db import acquire_instance_lock
lock = acquire_instance_lock(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""


def test_a_second_holder_is_refused_until_the_first_lets_go(db_url: str) -> None:
    first = acquire_instance_lock(db_url)
    assert first.held
    try:
        with pytest.raises(DatabaseInUseError, match=f"another engine is using the database .*pid {_pid_hint(db_url)}"):
            acquire_instance_lock(db_url, wait_s=0.5)
    finally:
        first.release()
    again = acquire_instance_lock(db_url)
    assert again.held
    again.release()
    again.release()  # idempotent


def test_the_lock_dies_with_a_killed_holder(db_url: str) -> None:
    # kill -9 leaves no chance to release: the kernel (flock) or the server (session end) must drop it, or a
    # restart after a crash could never start.
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, db_url], cwd=_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DatabaseInUseError):
            acquire_instance_lock(db_url, wait_s=0.5)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    lock = acquire_instance_lock(db_url)  # a PostgreSQL session still ending is waited for
    assert lock.held
    lock.release()


def test_an_unreachable_database_starts_without_the_lock() -> None:
    # The engine spools while its database is down; refusing to start for want of the lock would be worse.
    lock = acquire_instance_lock("postgresql://nobody:s3ntinel-pw@127.0.0.1:1/none")
    assert not lock.held and "s3ntinel-pw" not in lock.what


def test_an_in_memory_database_needs_no_lock() -> None:
    a, b = acquire_instance_lock("sqlite:///:memory:"), acquire_instance_lock("sqlite:///:memory:")
    assert not a.held and not b.held


def _pid_hint(db_url: str) -> str:
    # The holder's own pid on both: SQLite writes it in the lock file, PostgreSQL's lock session carries it in its
    # application_name (the server's backend pid is named as such, never as the holder's pid).
    hint = str(os.getpid())
    return hint if db_url.startswith("sqlite") else rf"{hint} from client address \S+; server backend pid \d+"


def test_a_holder_that_is_no_engine_is_described_by_what_the_server_shows() -> None:
    text = holder_text((11814, "psql", "10.0.0.7"))
    assert text == (
        "advisory lock held by another session: server backend pid 11814, client address 10.0.0.7, "
        "application_name 'psql'"
    )
    assert "server backend pid 7" in holder_text((7, None, None)) and "a local socket" in holder_text((7, None, None))
