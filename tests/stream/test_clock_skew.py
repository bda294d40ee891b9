"""A host clock off the exchange's: the subscription is signed with the exchange's time, and a refused timestamp
(-1021) re-measures the offset and retries with backoff — never fatal (pure watch, then the real UBWA)."""

from __future__ import annotations

import itertools

import pytest

from actors.stream import (
    CLOCK_SKEW_CODES,
    FATAL_SUBSCRIBE_CODES,
    FIRST_SUBSCRIPTION,
    RATE_LIMIT_CODES,
    CreateStream,
    Decision,
    HealthState,
    RejectionKind,
    ReportHealth,
    ResyncClock,
    ScheduleRecreate,
    ServerTime,
    classify_rejection,
    stream_rejection,
)
from engine.clock import ManualClock
from sim import FaultSpec
from sim._core import wall_clock_ms
from tests.stream._helpers import Recorder, running_sim, stream_actor
from tests.stream._watch_helpers import gaps, states, watch

AHEAD = "Timestamp for this request was 1000ms ahead of the server's time."
OUTSIDE = "Timestamp for this request is outside of the recvWindow."
SKEW_MS = 2_000


def _refused(msg: str = AHEAD) -> str:
    return f"userDataStream.subscribe.signature failed: code=-1021 msg={msg}"


def _delay(decisions: list[Decision]) -> int:
    last = decisions[-1]
    assert isinstance(last, ScheduleRecreate)
    return last.delay_ms


def _fast_host() -> int:
    return wall_clock_ms() + SKEW_MS


# ---------------------------------------------------------------------- classification


@pytest.mark.parametrize("msg", [AHEAD, OUTSIDE])
def test_a_refused_timestamp_is_clock_skew_not_an_other_refusal(msg: str) -> None:
    rejection = stream_rejection(_refused(msg), 0)
    assert rejection == classify_rejection(-1021)
    assert rejection is not None and rejection.kind is RejectionKind.CLOCK
    assert rejection.label == "clock skew (code=-1021)"
    assert not CLOCK_SKEW_CODES & (FATAL_SUBSCRIBE_CODES | RATE_LIMIT_CODES)


# ---------------------------------------------------------------------- the watchdog


def test_repeated_clock_skew_refusals_resync_back_off_and_never_turn_fatal() -> None:
    clock = ManualClock()
    w = watch()  # backoff 100..5000 ms, max_rejections 3
    w.start(clock.now_ms())
    w.created("s1", clock.now_ms())
    outs = [w.on_signal("s1", "STREAM_UNREPAIRABLE", _refused(), clock.now_ms())]
    for n in range(2, 4 * w.max_rejections + 1):  # well past max_rejections
        clock.advance(_delay(outs[-1]))
        assert w.recreate_due(clock.now_ms()) == [CreateStream()]
        w.created(f"s{n}", clock.now_ms())
        msg = OUTSIDE if n % 2 else AHEAD
        outs.append(w.on_signal(f"s{n}", "STREAM_UNREPAIRABLE", _refused(msg), clock.now_ms()))
    # Every refusal re-measures the clock offset first (before a retry that may be due at once).
    assert all(isinstance(out[0], ResyncClock) for out in outs)
    reports = [d for out in outs for d in out if isinstance(d, ReportHealth)]
    assert all(r.warn and "clock skew" in r.health.reason for r in reports)
    # Never fatal; the supervisor is alerted once, when re-measuring has not helped by the third refusal.
    expected = [HealthState.RECONNECTING] * len(outs)
    expected[w.max_rejections - 1] = HealthState.UNREPAIRABLE
    assert [r.health.state for r in reports] == expected
    assert w.phase == "backoff" and w.rejections == 0
    # Not hot: the delays back off exponentially to the cap, like any transient failure.
    delays = [_delay(out) for out in outs]
    assert delays[0] == 0 and 50 <= delays[1] <= 100 and delays[-1] >= 2_500
    assert all(later >= earlier // 2 for earlier, later in itertools.pairwise(delays))
    # The re-measured offset lets it through: live, the first subscription's gap, the count starts over.
    clock.advance(delays[-1])
    assert w.recreate_due(clock.now_ms()) == [CreateStream()]
    w.created("s99", clock.now_ms())
    w.on_signal("s99", "CONNECT", None, clock.now_ms())
    out = w.on_probe_reply("s99", True, clock.now_ms())
    assert states(out) == [HealthState.CONNECTED] and gaps(out) == [FIRST_SUBSCRIPTION]
    assert w.skewed == 0


def test_clock_skew_refusals_do_not_count_toward_the_fatal_other_refusals() -> None:
    w = watch()
    w.start(0)
    w.created("s1", 0)
    w.on_signal("s1", "STREAM_UNREPAIRABLE", "userDataStream.subscribe.signature failed: code=-1999 msg=x", 0)
    for n, now in enumerate(range(10**6, 5 * 10**6, 10**6), start=2):
        w.recreate_due(now)
        w.created(f"s{n}", now)
        w.on_signal(f"s{n}", "STREAM_UNREPAIRABLE", _refused(), now)
    assert w.rejections == 1 and w.phase == "backoff"


# ---------------------------------------------------------------------- the actor, real UBWA


def test_server_time_corrects_the_host_clock_by_the_measured_offset() -> None:
    with running_sim() as sim:
        server_time = ServerTime(sim.urls.rest, _fast_host)
        assert server_time.offset_ms == 0
        offset = server_time.measure()
        assert offset is not None and -SKEW_MS - 500 <= offset <= -SKEW_MS + 500
        assert abs(server_time.now_ms() - wall_clock_ms()) <= 500


def test_a_measurement_cut_short_keeps_the_old_offset_and_the_actor_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    # http.client's IncompleteRead is no OSError: it escaped measure() and stopped the stream actor (on start, or
    # at a -1021 re-measure), leaving fills to the REST reconciliation without an alert.
    import http.client
    import urllib.request

    def cut_short(*_args: object, **_kwargs: object) -> object:
        raise http.client.IncompleteRead(b'{"serverTime": 17')

    with running_sim() as sim:
        server_time = ServerTime(sim.urls.rest, _fast_host)
        offset = server_time.measure()
        monkeypatch.setattr(urllib.request, "urlopen", cut_short)
        assert server_time.measure() is None and server_time.offset_ms == offset


def _skewed(rec: Recorder) -> list[str]:
    return [h.reason for h in rec.health if "clock skew" in h.reason]


def test_a_host_clock_two_seconds_fast_subscribes_at_once() -> None:
    with running_sim() as sim, stream_actor(sim, wall_ms=_fast_host) as run:
        run.rec.wait(lambda r: r.connected_count() >= 1, what="subscribed")
        assert sim.control.wait_subscriptions(1, within_s=5)
        assert _skewed(run.rec) == [] and run.attempts() == 1


def test_a_refused_timestamp_re_measures_the_offset_and_subscribes() -> None:
    with running_sim() as sim:
        # The first measurement fails (the offset stays 0): the first subscription is signed 2 s ahead.
        sim.control.add_fault(FaultSpec(kind="http_error", target="GET /api/v3/time", count=1))
        with stream_actor(sim, wall_ms=_fast_host) as run:
            run.rec.wait(lambda r: r.connected_count() >= 1, what="subscribed after re-measuring")
            assert sim.control.wait_subscriptions(1, within_s=5)
            assert len(_skewed(run.rec)) == 1 and "code=-1021" in _skewed(run.rec)[0]
            assert HealthState.FATAL not in run.rec.states() and run.attempts() == 2
