"""Builders shared by the stream-watch tests (not collected)."""

from __future__ import annotations

import random

from actors.stream import (
    Backoff,
    ConnectionBudget,
    CreateStream,
    Decision,
    FireGap,
    HealthState,
    ReportHealth,
    SendProbe,
    StreamRole,
    StreamWatch,
)

SILENCE = 3_000
GRACE = 2_000


def watch(role: StreamRole = StreamRole.USER, limit: int = 300, seed: int = 1) -> StreamWatch:
    return StreamWatch(
        role,
        backoff=Backoff(100, 5_000, random.Random(seed)),
        budget=ConnectionBudget(limit, 300_000),
        silence_ms=SILENCE,
        reconnect_grace_ms=GRACE,
    )


def states(decisions: list[Decision]) -> list[HealthState]:
    return [d.health.state for d in decisions if isinstance(d, ReportHealth)]


def gaps(decisions: list[Decision]) -> list[str]:
    return [d.reason for d in decisions if isinstance(d, FireGap)]


def live(w: StreamWatch, stream_id: str = "s1", now: int = 0) -> list[Decision]:
    assert w.start(now) == [CreateStream()]
    assert states(w.created(stream_id, now)) == [HealthState.CONNECTING]
    out = w.on_signal(stream_id, "CONNECT", None, now)
    assert out == [SendProbe(stream_id, "bexec-wd-1")]
    out = w.on_probe_reply(stream_id, True, now)
    assert states(out) == [HealthState.CONNECTED]
    return out
