"""Benchmark: start-up time of light CLI commands against the bare interpreter floor.

Target (issue 2): ``python run.py --help`` under 0.3 s on the 2-core machine. Prints the engine figure, the
floor (``python -c pass``) measured in the same run, and their ratio.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 15


def _time(cmd: list[str]) -> list[float]:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> int:
    floor = _time([sys.executable, "-c", "pass"])
    rows = [
        ("run.py --help", [sys.executable, "run.py", "--help"], 0.3),
        ("run.py check-config", [sys.executable, "run.py", "check-config"], None),
    ]
    floor_med = statistics.median(floor)
    print(f"{'command':<24}{'median s':>10}{'p90 s':>10}{'floor s':>10}{'ratio':>8}  target")
    ok = True
    for name, cmd, target in rows:
        samples = _time(cmd)
        med = statistics.median(samples)
        p90 = sorted(samples)[int(0.9 * (len(samples) - 1))]
        verdict = "" if target is None else (f"< {target} s " + ("PASS" if med < target else "FAIL"))
        ok = ok and (target is None or med < target)
        print(f"{name:<24}{med:>10.3f}{p90:>10.3f}{floor_med:>10.3f}{med / floor_med:>8.2f}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
