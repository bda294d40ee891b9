"""CPU by thread for the fill benchmarks (used through `_fill_rig`): /proc counters and a per-thread cProfile.

`thread_cpu` and `print_thread_cpu` read each thread's CPU seconds (no overhead); `ThreadProfiler` says in
which functions each thread group spends it (large overhead: use it for shares).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["ThreadProfiler", "print_thread_cpu", "thread_cpu", "thread_group"]


def thread_group(name: str, labels: dict[str, str] | None = None) -> str:
    """A thread's name without its ids (``PairActor-3`` → ``PairActor-N``); UBWA stream threads by label."""
    import re

    for key, label in (labels or {}).items():
        if key in name:
            return label
    if "stream_id=" in name:
        return "UBWA stream " + name.split("stream_id=")[1][:8]
    return re.sub(r"urn:uuid:\S+|\d+", "N", name)


def thread_cpu(labels: dict[str, str] | None = None) -> dict[str, float]:
    """CPU seconds (user + system) of this process's live threads, by `thread_group` (from /proc; no overhead)."""
    ticks = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        key = thread_group(names.get(int(tid), "native"), labels)
        out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def print_thread_cpu(
    before: dict[str, float], after: dict[str, float], per: int, what: str, unit: str = "fill"
) -> None:
    """Each thread group's CPU between two `thread_cpu` readings, in total and per `unit` (`per` of them)."""
    delta = sorted(((after[k] - before.get(k, 0.0), k) for k in after), reverse=True)
    total = sum(d for d, _ in delta)
    print(f"  CPU by thread while {what} ({total:.2f} s, {total / per * 1e6:.0f} µs per {unit}):")
    for d, k in delta:
        if d >= 0.02:
            print(f"    {d:6.2f} s  {d / per * 1e6:6.0f} µs/{unit}  {k}")


# ---- profiling ---------------------------------------------------------------------------------------
class ThreadProfiler:
    """cProfile with a per-thread CPU clock in every thread started after `install` (``Thread.run`` wrapped).

    The engine's work is spread over UBWA, pykka and loop threads; this says which thread spends the CPU, and
    in which functions. The overhead is large (every call reads the thread's CPU clock): use it for shares.
    """

    def __init__(self) -> None:
        self.profiles: list[tuple[str, Any]] = []

    def install(self) -> None:
        import cProfile

        original = threading.Thread.run
        profiles = self.profiles

        def run(thread: threading.Thread) -> None:
            prof = cProfile.Profile(time.thread_time_ns, 1e-9)
            profiles.append((thread.name, prof))
            prof.enable()
            try:
                original(thread)
            finally:
                prof.disable()

        threading.Thread.run = run  # type: ignore[method-assign,assignment]

    def dump(self, directory: Path) -> None:
        """Write each thread group's merged stats to ``<directory>/<group>.prof`` (read with `pstats`)."""
        import pstats
        import re

        directory.mkdir(parents=True, exist_ok=True)
        groups: dict[str, list[Any]] = {}
        for name, prof in self.profiles:
            groups.setdefault(thread_group(name), []).append(prof)
        for key, profs in groups.items():
            stats = pstats.Stats(profs[0])
            for prof in profs[1:]:
                stats.add(prof)
            stats.dump_stats(directory / (re.sub(r"\W+", "_", key).strip("_") + ".prof"))

    def report(self, per: int, top: int = 12) -> None:
        """Per thread group: CPU seconds (and µs per ``per`` items), then the top functions by own time."""
        import io
        import pstats
        import re

        groups: dict[str, list[Any]] = {}
        for name, prof in self.profiles:
            key = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27,}|urn:uuid:\S+|\d+", "N", name)
            groups.setdefault(key, []).append(prof)
        totals = []
        for key, profs in groups.items():
            stats = pstats.Stats(profs[0], stream=io.StringIO())
            for prof in profs[1:]:
                stats.add(prof)
            total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
            totals.append((total, key, len(profs), stats))
        totals.sort(key=lambda t: t[0], reverse=True)
        grand = sum(t[0] for t in totals)
        print(f"CPU by thread (cProfile, thread CPU clock; {grand:.2f} s in all, {grand / per * 1e6:.0f} µs per item)")
        for total, key, n, _stats in totals:
            if total > 0.01 * grand:
                print(f"  {total:7.2f} s  {total / per * 1e6:7.1f} µs/item  {n:3d} thread(s)  {key}")
        for total, key, _n, stats in totals[:4]:
            if total < 0.05 * grand:
                continue
            print(f"  -- {key}: top functions by own CPU (µs per item, own / cumulative)")
            rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
            for (file, line, func), (_cc, _nc, tt, ct, _callers) in rows:
                where = f"{Path(file).name}:{line}" if line else file
                print(f"     {tt / per * 1e6:7.1f} {ct / per * 1e6:8.1f}  {func}  ({where})")
