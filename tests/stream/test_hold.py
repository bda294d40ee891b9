"""A watchdog probe refused for a rate limit or a ban (429/418) holds the watch: no probe, no silence verdict and
no reconnect until the wait the exchange named (pure: no sockets)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.stream import (
    CreateStream,
    HealthState,
    ReportHealth,
    ScheduleRecreate,
    SendProbe,
    StopStream,
    StreamWatch,
)
from tests.stream._watch_helpers import SILENCE, live, states, watch


def _probe_due(w: StreamWatch, now: int) -> SendProbe:
    [probe] = w.on_tick(now, None)
    assert isinstance(probe, SendProbe)
    return probe


def test_a_rate_limited_probe_holds_probes_and_the_silence_verdict_for_the_named_wait() -> None:
    w = watch()
    live(w)
    probe = _probe_due(w, SILENCE // 3)
    [held] = w.on_probe_reply(probe.stream_id, False, 1_000, ok=False, status=429, retry_after_ms=40_000)
    assert isinstance(held, ReportHealth) and held.warn and held.health.state is HealthState.CONNECTED
    assert "rate limited (HTTP 429)" in held.health.reason and "40000 ms" in held.health.reason
    # A second refusal (a probe already on its way) does not alert again, nor shorten the hold.
    assert w.on_probe_reply("s1", False, 1_100, ok=False, status=429, retry_after_ms=1_000) == []
    for now in range(1_000, 41_000, 500):
        assert w.on_tick(now, None) == [], now  # nothing received all along: no probe, never silent
    assert w.on_tick(41_000, None) == []  # the hold is over: silence and probing count from its end
    assert _probe_due(w, 41_000 + SILENCE // 3).stream_id == "s1"
    assert states(w.on_tick(41_000 + SILENCE, None)) == [HealthState.SILENT]


def test_without_a_named_wait_the_hold_is_the_throttle_floor() -> None:
    w = watch()
    live(w)
    probe = _probe_due(w, 1_000)
    w.on_probe_reply(probe.stream_id, False, 1_000, ok=False, status=418)
    assert w.hold_until_ms == 1_000 + w.throttle_floor_ms


def test_other_errors_do_not_hold() -> None:
    w = watch()
    live(w)
    probe = _probe_due(w, 1_000)
    assert w.on_probe_reply(probe.stream_id, False, 1_000, ok=False, status=503, retry_after_ms=40_000) == []
    assert w.hold_until_ms == 0
    assert states(w.on_tick(SILENCE, None)) == [HealthState.SILENT]


def test_a_disconnect_during_a_hold_stops_ubwas_loop_and_reconnects_after_it() -> None:
    w = watch()
    live(w)
    probe = _probe_due(w, 1_000)
    w.on_probe_reply(probe.stream_id, False, 1_000, ok=False, status=418, retry_after_ms=300_000)
    out = w.on_signal("s1", "DISCONNECT", None, 2_000)
    stop, report = out[0], out[1]
    assert stop == StopStream("s1") and isinstance(report, ReportHealth)
    assert report.health.state is HealthState.RECONNECTING and "disconnected while rate limited" in report.health.reason
    assert isinstance(out[-1], ScheduleRecreate) and out[-1].delay_ms >= 299_000
    assert w.on_signal("s1", "RESTART", "server rejected WebSocket connection: HTTP 418", 2_100) == []  # stopped
    assert w.recreate_due(2_000 + out[-1].delay_ms) == [CreateStream()]


@given(
    wait=st.integers(min_value=0, max_value=3 * 86_400_000),
    events=st.lists(st.tuples(st.integers(min_value=1, max_value=60_000), st.sampled_from(["tick", "disconnect"]))),
)
def test_nothing_reaches_the_exchange_before_a_hold_ends(wait: int, events: list[tuple[int, str]]) -> None:
    w = watch()
    live(w)
    probe = _probe_due(w, 1_000)
    w.on_probe_reply(probe.stream_id, False, 1_000, ok=False, status=429, retry_after_ms=wait)
    now = 1_000
    for step, kind in events:
        now += step
        out = w.on_tick(now, None) if kind == "tick" else w.on_signal(w.stream_id, "DISCONNECT", None, now)
        if now < 1_000 + wait:
            assert not any(isinstance(d, SendProbe | CreateStream) for d in out), (now, out)
            for d in out:
                if isinstance(d, ScheduleRecreate):
                    assert now + d.delay_ms >= 1_000 + wait


def test_a_ban_rest_met_defers_a_reconnect_already_scheduled_until_it_ends() -> None:
    """The stream was backing off after a drop when REST met a 418: the recreate that comes due inside the ban waits
    for its end (its handshake would be refused; before, it knocked, and again every throttle floor)."""
    w = watch()
    live(w)
    out = w.on_signal("s1", "DISCONNECT", None, 1_000)
    assert states(out) == [HealthState.RECONNECTING]
    out = w.on_tick(1_000 + w.reconnect_grace_ms, None)  # UBWA could not reconnect: our backoff takes over
    [due] = [d for d in out if isinstance(d, ScheduleRecreate)]
    assert w.hold(600_000, 2_000) == []  # the root: REST met a ban, lifted at 600 s (backing off: nothing to stop)
    recreate_at = 1_000 + w.reconnect_grace_ms + due.delay_ms
    deferred = w.recreate_due(recreate_at)
    assert states(deferred) == [HealthState.RECONNECTING]
    assert "banned: no connection for" in deferred[0].health.reason  # type: ignore[union-attr]
    assert deferred[-1] == ScheduleRecreate(600_000 - recreate_at)
    for now in range(recreate_at, 600_000, 5_000):
        assert not any(isinstance(d, CreateStream | SendProbe) for d in w.on_tick(now, None)), now
    assert w.recreate_due(600_000) == [CreateStream()]


def test_a_hold_never_shortens_one_and_the_past_holds_nothing() -> None:
    w = watch()
    live(w)
    w.hold(500_000, 1_000)
    w.hold(200_000, 2_000)  # an older ban's end, told late
    assert w.hold_until_ms == 500_000
    other = watch()
    live(other)
    other.hold(1_000, 5_000)  # over already
    assert other.on_signal("s1", "DISCONNECT", None, 6_000)[-1].health.reason == (  # type: ignore[union-attr]
        "disconnected; UBWA is reconnecting"
    )


def test_a_ban_rest_met_stops_ubwas_reconnect_loop_and_a_connection_being_made() -> None:
    """Told while UBWA reconnects on its own (every 0.1 s) or a stream is connecting, the hold stops it: each
    handshake would be refused, and counted against the ban."""
    w = watch()
    live(w)
    w.on_signal("s1", "DISCONNECT", None, 1_000)  # UBWA reconnects by itself
    out = w.hold(600_000, 1_100)
    assert out[0] == StopStream("s1") and states(out) == [HealthState.RECONNECTING]
    assert "IP banned: stopped connecting" in out[1].health.reason  # type: ignore[union-attr]
    assert isinstance(out[-1], ScheduleRecreate) and 1_100 + out[-1].delay_ms >= 600_000
    connecting = watch()
    connecting.start(0)
    connecting.created("s2", 0)
    assert connecting.hold(600_000, 100)[0] == StopStream("s2")


def test_a_connection_made_during_a_hold_is_not_probed_before_it_ends() -> None:
    w = watch()
    w.start(0)
    w.created("s1", 0)
    w.hold_until_ms = 60_000  # a hold begun as the handshake completed
    assert w.on_signal("s1", "CONNECT", None, 10) == []  # before: a session.status probe at once
    assert w.on_tick(59_000, None) == []
    [probe] = w.on_tick(60_000 + SILENCE // 3, None)
    assert isinstance(probe, SendProbe)
