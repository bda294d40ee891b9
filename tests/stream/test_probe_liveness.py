"""Watchdog probes and liveness: UBWA's data callback and the watchdog together, on the injected ManualClock.

A user stream whose subscription is gone but whose server answers every ``session.status`` probe with an error
must still be found silent: an error reply says the socket is open, nothing about the subscription.
"""

from __future__ import annotations

import random

from actors.stream import (
    Backoff,
    ConnectionBudget,
    Decision,
    HealthState,
    ReportHealth,
    SendProbe,
    StopStream,
    StreamRole,
    StreamWatch,
)
from actors.stream._callbacks import Control, UbwaCallbacks
from actors.stream._frames import LatestPrices, ProbeReply
from actors.stream._ubwa import StreamRef
from engine.clock import ManualClock
from engine.domain import ErrorRecord

SILENCE_MS = 30_000  # probes go out every 10 s (a third of it)
TICK_MS = 1_000


class _Stream:
    """One user stream as the actor wires it: UBWA's data callback → inbox → the watchdog; ticks every second."""

    def __init__(self, *, answer: bytes) -> None:
        self.clock = ManualClock()
        self.inbox: list[object] = []
        self.errors: list[ErrorRecord] = []
        self.callbacks = UbwaCallbacks(
            clock=self.clock,
            tell=self.inbox.append,
            on_report=lambda item: None,
            on_error=self.errors.append,
            prices=LatestPrices(),
        )
        self.ref = StreamRef(StreamRole.USER)
        self.ref.stream_id = "s1"
        self.answer = answer
        self.watch = StreamWatch(
            StreamRole.USER,
            backoff=Backoff(100, 5_000, random.Random(7)),
            budget=ConnectionBudget(300, 300_000),
            silence_ms=SILENCE_MS,
            reconnect_grace_ms=5_000,
        )
        self.probes = 0
        now = self.clock.now_ms()
        self.watch.start(now)
        self.watch.created("s1", now)
        self._carry_out(self.watch.on_signal("s1", "CONNECT", None, now))
        # the first probe proves the subscription: the stream is live
        self._frame(b'{"id":"bexec-wd-1","status":200,"result":{"userDataStream":true}}')
        assert self.watch.health is not None and self.watch.health.state is HealthState.CONNECTED

    def _frame(self, raw: bytes) -> list[Decision]:
        self.callbacks.user_frame(self.ref, raw)
        out: list[Decision] = []
        for message in self.inbox:
            assert isinstance(message, Control) and isinstance(message.item, ProbeReply)
            now = self.clock.now_ms()
            out += self.watch.on_probe_reply(message.ref.stream_id, message.item.subscribed, now, ok=message.item.ok)
        self.inbox.clear()
        return out

    def _carry_out(self, decisions: list[Decision]) -> list[Decision]:
        out = list(decisions)
        for decision in decisions:
            if isinstance(decision, SendProbe):
                # the server answers at once (what it answers is the test's choice)
                self.probes += 1
                out += self._frame(self.answer.replace(b"PROBE_ID", decision.probe_id.encode()))
        return out

    def run(self, ms: int) -> list[Decision]:
        """Advance the clock tick by tick for `ms`; every decision the watchdog took."""
        out: list[Decision] = []
        for _ in range(ms // TICK_MS):
            now = self.clock.advance(TICK_MS)
            out += self._carry_out(self.watch.on_tick(now, self.ref.last_rx_ms))
        return out


def _health(decisions: list[Decision]) -> list[HealthState]:
    return [d.health.state for d in decisions if isinstance(d, ReportHealth)]


def test_a_stream_whose_every_probe_is_answered_with_an_error_is_found_silent_and_recreated() -> None:
    # Subscription lost, the server answering each probe with an error every 10 s, no other frame. Each error
    # reply stamped the stream as live, so the silence limit was never reached: the stream was kept forever.
    stream = _Stream(answer=b'{"id":"PROBE_ID","status":429,"error":{"code":-1003,"msg":"Too many requests"}}')
    out = stream.run(SILENCE_MS)
    assert stream.probes >= 2  # the errored probes were sent and answered
    assert _health(out) == [HealthState.SILENT]
    assert StopStream("s1") in out and stream.watch.gap_reason == "silence"


def test_a_stream_whose_probes_are_answered_normally_stays_live() -> None:
    stream = _Stream(answer=b'{"id":"PROBE_ID","status":200,"result":{"userDataStream":true}}')
    out = stream.run(5 * SILENCE_MS)
    assert stream.probes >= 10
    assert _health(out) == [] and not any(isinstance(d, StopStream) for d in out)
    assert stream.watch.stream_id == "s1"


def test_one_errored_probe_between_normal_replies_keeps_the_stream_live() -> None:
    # A passing 429 is not a dead stream: the next normal reply proves it live again before the limit.
    stream = _Stream(answer=b'{"id":"PROBE_ID","status":429,"error":{"code":-1003,"msg":"Too many requests"}}')
    out = stream.run(SILENCE_MS // 3 + TICK_MS)  # one errored probe
    stream.answer = b'{"id":"PROBE_ID","status":200,"result":{"userDataStream":true}}'
    out += stream.run(3 * SILENCE_MS)
    assert _health(out) == [] and stream.watch.stream_id == "s1"
