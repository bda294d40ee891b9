"""Properties of the stream watch over arbitrary inputs: backoff, the connection budget, and interleavings of
frames, probes and failures."""

from __future__ import annotations

import copy
import random

from hypothesis import given
from hypothesis import strategies as st

from actors.stream import (
    MARKET_QUIET_MS,
    Backoff,
    ConnectionBudget,
    CreateStream,
    Decision,
    FireGap,
    HealthState,
    ReportHealth,
    ScheduleRecreate,
    SendProbe,
    StopStream,
    StreamRole,
    StreamWatch,
)
from tests.stream._watch_helpers import SILENCE, live, states, watch

# ---------------------------------------------------------------------- properties


@given(st.integers(1, 1_000), st.integers(1, 100_000), st.integers(0, 2**32), st.integers(1, 60))
def test_backoff_grows_capped_with_jitter(min_ms: int, extra: int, seed: int, n: int) -> None:
    b = Backoff(min_ms, min_ms + extra, random.Random(seed))
    delays = [b.next_delay_ms() for _ in range(n)]
    assert delays[0] == 0
    for k, d in enumerate(delays[1:], start=1):
        base = min(b.max_ms, min_ms * 2 ** (k - 1))
        assert base // 2 <= d <= base <= b.max_ms
    b.reset()
    assert b.next_delay_ms() == 0


@given(st.integers(1, 10), st.integers(1, 1_000), st.lists(st.tuples(st.integers(0, 300), st.booleans()), max_size=200))
def test_budget_never_admits_more_than_the_limit_per_window(
    limit: int, window: int, ops: list[tuple[int, bool]]
) -> None:
    budget = ConnectionBudget(limit, window)
    now = 0
    taken: list[int] = []
    for dt, theirs in ops:
        now += dt
        if theirs:
            budget.note(now)
            taken.append(now)
            continue
        wait = budget.wait_ms(now)
        assert budget.try_take(now) is (wait == 0)
        if wait == 0:
            taken.append(now)
            in_window = [t for t in taken if t > now - window]
            # Our own attempts never push the window past the limit (UBWA's may, and then we wait).
            assert len(in_window) <= max(limit, len([t for t in in_window if t != now]) + 1)
        else:
            assert budget.used(now) >= limit
            # Asked on a copy: a look into the future expires attempts for good (time only moves forward).
            assert copy.deepcopy(budget).wait_ms(now + wait) == 0
    assert budget.total == len(taken)


_INPUTS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "CONNECT",
                "DISCONNECT",
                "UNREPAIRABLE",
                "FATAL",
                "RATE",
                "TERM",
                "SHUT",
                "PROBE_OK",
                "PROBE_NO",
                "TICK",
                "DUE",
                "STALE",
            ]
        ),
        st.integers(0, 4_000),
    ),
    max_size=80,
)


@given(_INPUTS, st.integers(1, 6), st.integers(0, 1000))
def test_watch_invariants_over_arbitrary_interleavings(inputs: list[tuple[str, int]], limit: int, seed: int) -> None:
    """A simulated actor carries out the decisions; whatever happens, the invariants hold."""
    w = watch(limit=limit, seed=seed)
    now = 0
    ids = iter(f"s{i}" for i in range(10_000))
    creates: list[int] = []
    open_gap = True  # the first subscription's
    fatal = False
    pending_due = False

    def apply(decisions: list[Decision]) -> None:
        nonlocal open_gap, pending_due
        for i, d in enumerate(decisions):
            if isinstance(d, FireGap):
                # A gap is fired only together with the news that the subscription is live again.
                assert any(
                    isinstance(x, ReportHealth) and x.health.state is HealthState.CONNECTED for x in decisions[:i]
                )
                open_gap = False
            elif isinstance(d, CreateStream):
                creates.append(now)
                apply(w.created(next(ids), now))
            elif isinstance(d, ScheduleRecreate):
                pending_due = True

    apply(w.start(now))
    for kind, dt in inputs:
        now += dt
        sid = w.stream_id
        before = w.gap_reason
        if kind in ("CONNECT", "DISCONNECT", "RESTART"):
            out = w.on_signal(sid, kind, None, now)
        elif kind == "UNREPAIRABLE":
            out = w.on_signal(sid, "STREAM_UNREPAIRABLE", "socket broke", now)
        elif kind == "FATAL":
            out = w.on_signal(sid, "STREAM_UNREPAIRABLE", "userDataStream.subscribe.signature failed: code=-2015", now)
        elif kind == "RATE":
            out = w.on_signal(sid, "STREAM_UNREPAIRABLE", "userDataStream.subscribe.signature failed: code=-1003", now)
            assert w.phase != "fatal" or fatal  # a rate limit never makes it fatal
        elif kind == "TERM":
            out = w.on_terminated(sid, now)
        elif kind == "SHUT":
            out = w.on_server_shutdown(sid, now)
        elif kind in ("PROBE_OK", "PROBE_NO"):
            out = w.on_probe_reply(sid, kind == "PROBE_OK", now)
        elif kind == "TICK":
            out = w.on_tick(now, now - dt // 2)
        elif kind == "DUE":
            pending_due = False
            out = w.recreate_due(now)
        else:
            out = w.on_signal("not-ours", "DISCONNECT", None, now) + w.on_terminated("not-ours", now)
            assert out == []
        if fatal:
            assert out == []  # fatal is final
        if w.gap_reason is not None and before is None:
            open_gap = True
        apply(out)
        fatal = fatal or w.phase == "fatal"
        # Never more of our connection attempts in a window than the budget allows.
        assert len([t for t in creates if t > now - 300_000]) <= limit
    if not fatal and open_gap:
        assert w.gap_reason is not None  # an open gap is never forgotten before it is fired


@given(st.lists(st.integers(1, SILENCE // 3), min_size=1, max_size=300), st.integers(0, 20))
def test_a_healthy_quiet_stream_is_never_declared_silent(steps: list[int], reply_delay: int) -> None:
    """Ticks no further apart than the probe interval, and every probe answered within a few ms: never silent."""
    w = watch()
    live(w)
    now = 0
    last_rx = 0
    for step in steps:
        now += step
        for d in w.on_tick(now, last_rx):
            assert not isinstance(d, StopStream | ReportHealth)
            if isinstance(d, SendProbe):
                last_rx = now + reply_delay
                assert w.on_probe_reply(d.stream_id, True, last_rx) == []
    assert w.phase == "live" and w.budget.total == 1


@given(st.integers(0, 3 * 86_400_000), st.integers(0, 2**32))
def test_a_floor_is_never_undercut_and_its_jitter_stays_within_30_s(floor_ms: int, seed: int) -> None:
    # A ban of up to three days ends when it ends: a quarter of it on top would idle the stream for hours.
    b = Backoff(500, 30_000, random.Random(seed))
    b.next_delay_ms()  # past the immediate first attempt
    d = b.next_delay_ms(floor_ms)
    assert floor_ms <= d <= max(floor_ms + 30_000, 30_000)


def _storm(flap: bool) -> list[int]:
    """UBWA's attempts (CreateStream and its own RESTARTs) over 10 minutes of a server that refuses connections
    (`flap` False) or accepts each one and drops it at once (`flap` True); times in ms."""
    w = StreamWatch(StreamRole.USER, backoff=Backoff(250, 30_000, random.Random(1)),
                    budget=ConnectionBudget(250, 300_000), silence_ms=30_000, reconnect_grace_ms=5_000)  # fmt: skip
    now, sid, due, attempts = 0, 0, None, []

    def do(decisions: list[Decision]) -> None:
        nonlocal sid, due
        for d in decisions:
            if isinstance(d, CreateStream):
                sid += 1
                attempts.append(now)
                w.created(str(sid), now)
            elif isinstance(d, ScheduleRecreate):
                due = now + d.delay_ms

    do(w.start(now))
    while now < 600_000:
        now += 100  # UBWA tries again every 0.1 s
        if due is not None and now >= due:
            due = None
            do(w.recreate_due(now))
        if w.stream_id is not None and flap:
            do(w.on_signal(w.stream_id, "CONNECT", None, now))
            do(w.on_signal(w.stream_id, "DISCONNECT", None, now))
        if w.stream_id is not None:
            attempts.append(now)
            do(w.on_signal(w.stream_id, "RESTART", "OSError", now))
        if now % 1000 == 0:
            do(w.on_tick(now, None))
    return attempts


def test_failing_reconnects_back_off_instead_of_running_at_the_connection_budget() -> None:
    # UBWA retries every 0.1 s on its own: left alone through an outage it spent the whole budget (250 per
    # 5 minutes, shared with the market stream), and a server accepting then dropping kept the grace from ever
    # expiring. After a few of its tries the watch takes over with its backoff (capped at 30 s here).
    for flap in (False, True):
        attempts = _storm(flap)
        assert len([t for t in attempts if t < 30_000]) <= 30, (flap, len(attempts))
        assert len([t for t in attempts if t >= 300_000]) <= 60, (flap, len(attempts))


def test_a_market_stream_that_goes_quiet_hands_prices_to_rest_polling_and_takes_them_back() -> None:
    # A server that stops pushing bookTicker but still answers pings kept the stream "connected" for good: REST
    # polling never resumed and the slippage guard judged on a frozen book. Quiet, it is reported so (the root
    # polls prices while the market stream is not "connected"); the connection itself is kept.
    w = watch(StreamRole.MARKET)
    assert w.start(0) == [CreateStream()]
    w.created("m1", 0)
    assert states(w.on_signal("m1", "CONNECT", None, 0)) == [HealthState.CONNECTED]
    assert w.on_tick(MARKET_QUIET_MS - 1, 0) == []
    out = w.on_tick(MARKET_QUIET_MS, 0)
    assert states(out) == [HealthState.QUIET] and not any(isinstance(d, StopStream) for d in out)
    assert w.on_tick(MARKET_QUIET_MS + 500, 0) == []  # said once
    assert states(w.on_tick(MARKET_QUIET_MS + 1_000, MARKET_QUIET_MS + 900)) == [HealthState.CONNECTED]
    # the user stream has its own silence limit (probes, then a reconnect): not this
    u = watch(StreamRole.USER)
    live(u)
    assert HealthState.QUIET not in states(u.on_tick(MARKET_QUIET_MS, MARKET_QUIET_MS - 1))
