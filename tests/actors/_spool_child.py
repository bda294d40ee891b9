"""Child process for the crash test: write during an outage, report, then wait to be killed (-9)."""

from __future__ import annotations

import sys
from pathlib import Path

from actors.persistence import Durability, start_persistence
from tests.db import _records as rec


def main() -> None:
    url, spool, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    handle = start_persistence(url, spool)
    for n in range(count):
        handle.save_fill(rec.fill(n + 1, f"c-{n % 7}"))
        if n % 10 == 0:
            handle.save_order(rec.order(f"c-{n % 7}"))
    assert handle.flush().get(timeout=30) is Durability.SPOOL
    sys.stdout.write("spooled\n")
    sys.stdout.flush()
    sys.stdin.read()  # block until killed


if __name__ == "__main__":
    main()
