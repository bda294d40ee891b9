"""The pure watchdog, backoff and connection budget: scenarios and properties (no threads, no sockets)."""

from __future__ import annotations

from actors.stream import (
    FIRST_SUBSCRIPTION,
    CreateStream,
    HealthState,
    ScheduleRecreate,
    SendProbe,
    StopStream,
    StreamRole,
    subscribe_rejection,
)
from tests.stream._watch_helpers import GRACE, SILENCE, gaps, live, states, watch


def test_first_subscription_fires_one_gap_once_proven_live_and_a_healthy_period_none() -> None:
    w = watch()
    assert w.gap_reason == FIRST_SUBSCRIPTION  # open from the start: the engine ran before the stream did
    w.start(0)
    w.created("s1", 0)
    assert gaps(w.on_signal("s1", "CONNECT", None, 1)) == []  # connected, but not yet proven subscribed
    out = w.on_probe_reply("s1", True, 2)
    assert states(out) == [HealthState.CONNECTED] and gaps(out) == [FIRST_SUBSCRIPTION]
    assert w.gap_reason is None and w.budget.total == 1
    fired: list[str] = []
    for t in range(0, 10 * SILENCE, SILENCE // 3):  # a long healthy stretch: every probe answered
        for d in w.on_tick(t, t - 1):
            fired += gaps([d])
            if isinstance(d, SendProbe):
                fired += gaps(w.on_probe_reply(d.stream_id, True, t))
    assert fired == [] and w.phase == "live"


def test_a_first_subscription_that_fails_keeps_its_gap_until_one_is_live() -> None:
    w = watch()
    w.start(0)
    w.created("s1", 0)
    w.on_signal("s1", "CONNECT", None, 1)
    w.on_signal("s1", "DISCONNECT", None, 2)  # the gap stays the first subscription's: one reconciliation
    assert w.on_signal("s1", "CONNECT", None, 3) == [SendProbe("s1", "bexec-wd-2")]
    assert gaps(w.on_probe_reply("s1", True, 4)) == [FIRST_SUBSCRIPTION]


def test_disconnect_then_connect_fires_the_gap_once_subscribed() -> None:
    w = watch()
    live(w)
    assert states(w.on_signal("s1", "DISCONNECT", None, 10)) == [HealthState.RECONNECTING]
    assert w.on_signal("s1", "RESTART", "connection closed", 10) == []  # UBWA's attempt, counted
    assert w.on_signal("s1", "CONNECT", None, 200) == [SendProbe("s1", "bexec-wd-2")]
    out = w.on_probe_reply("s1", True, 210)
    assert states(out) == [HealthState.CONNECTED] and gaps(out) == ["disconnect"]
    assert w.budget.total == 2 and w.reconnects == 1


def test_terminated_recreates_at_once_then_backs_off() -> None:
    w = watch()
    live(w)
    out = w.on_terminated("s1", 10)
    assert out[0] == StopStream("s1") and out[-1] == ScheduleRecreate(0)
    assert w.on_signal("s1", "DISCONNECT", None, 11) == []  # the old stream is not ours any more
    assert w.recreate_due(11) == [CreateStream()]
    w.created("s2", 11)
    w.on_signal("s2", "CONNECT", None, 12)
    assert gaps(w.on_probe_reply("s2", True, 13)) == ["eventStreamTerminated"]
    # Two failures in a row: the second waits.
    w.on_server_shutdown("s2", 20)
    assert w.recreate_due(20) == [CreateStream()]
    w.created("s3", 20)
    out = w.on_signal("s3", "STREAM_UNREPAIRABLE", "socket died", 21)
    delay = out[-1]
    assert isinstance(delay, ScheduleRecreate) and 50 <= delay.delay_ms <= 100


def test_quiet_stream_is_probed_and_silence_recreates() -> None:
    w = watch()
    live(w)
    assert w.on_tick(500, 0) == []
    assert w.on_tick(1_000, 0) == [SendProbe("s1", "bexec-wd-2")]
    assert w.on_tick(1_500, 0) == []  # one probe per interval
    assert states(w.on_probe_reply("s1", True, 1_510)) == []  # still live: nothing to report
    assert w.on_tick(2_000, 1_510) == []  # the reply counts as traffic
    assert w.on_tick(3_000, 1_510) == [SendProbe("s1", "bexec-wd-3")]
    out = w.on_tick(4_600, 1_510)
    assert out[0] == StopStream("s1") and states(out) == [HealthState.SILENT]
    assert w.gap_reason == "silence"


def test_probe_saying_not_subscribed_recreates() -> None:
    w = watch()
    live(w)
    out = w.on_probe_reply("s1", False, 5)
    assert out[0] == StopStream("s1") and w.gap_reason == "subscription lost"


def test_a_probe_answered_with_an_error_leaves_the_stream_alone() -> None:
    # A 429/-1003 (the WS API shares the IP's weight with REST), a 5xx: the connection answered, which says
    # nothing about the subscription. Tearing a live stream down for it opened a gap exactly when REST was
    # blocked, and the reconnect met the same limit.
    w = watch()
    live(w)
    assert w.on_probe_reply("s1", False, 5, ok=False) == []
    assert w.gap_reason is None and w.stream_id == "s1"
    assert w.on_probe_reply("s1", False, 6) != []  # an answer that says "not subscribed" still recreates


def test_bad_key_is_fatal_and_final() -> None:
    w = watch()
    w.start(0)
    w.created("s1", 0)
    w.on_signal("s1", "CONNECT", None, 1)
    w.on_signal("s1", "DISCONNECT", None, 2)
    err = "userDataStream.subscribe.signature failed: code=-2015 msg=Invalid API-key, IP, or permissions for action."
    assert states(w.on_signal("s1", "STREAM_UNREPAIRABLE", err, 3)) == [HealthState.FATAL]
    for t in range(0, 3_600_000, 1_000):
        assert w.on_tick(t, None) == []
    assert w.recreate_due(10**7) == [] and w.budget.total == 1


def test_unknown_rejections_turn_fatal_after_a_few_in_a_row() -> None:
    w = watch()
    w.start(0)
    err = "userDataStream.subscribe.signature failed: code=-1999 msg=Something new"
    results = []
    for sid in range(1, 4):
        w.created(f"s{sid}", 0)
        out = w.on_signal(f"s{sid}", "STREAM_UNREPAIRABLE", err, 0)
        results.append(states(out))
        w.recreate_due(10**6)
    assert results == [[HealthState.UNREPAIRABLE]] * 2 + [[HealthState.FATAL]]


def test_ubwa_reconnect_storm_is_taken_over_after_the_grace() -> None:
    w = watch()
    live(w)
    w.on_signal("s1", "DISCONNECT", None, 100)
    assert w.on_tick(100 + GRACE - 1, None) == []
    out = w.on_tick(100 + GRACE, None)
    assert out[0] == StopStream("s1") and isinstance(out[-1], ScheduleRecreate)


def test_connection_budget_holds_recreates_back() -> None:
    w = watch(limit=2)
    live(w)
    w.on_terminated("s1", 10)
    assert w.recreate_due(10) == [CreateStream()]
    w.created("s2", 10)
    out = w.on_terminated("s2", 20)  # backoff says soon, the budget says no
    assert isinstance(out[-1], ScheduleRecreate)
    out = w.recreate_due(20 + out[-1].delay_ms)
    wait = out[-1]
    assert isinstance(wait, ScheduleRecreate) and wait.delay_ms > 200_000
    assert "budget" in out[0].health.reason  # type: ignore[union-attr]
    assert w.recreate_due(300_000) == [CreateStream()]


def test_ubwa_retry_loop_is_stopped_when_the_budget_is_spent() -> None:
    w = watch(limit=5)
    live(w)
    w.on_signal("s1", "DISCONNECT", None, 100)
    outs = [w.on_signal("s1", "RESTART", "refused", 100 + 100 * i) for i in range(4)]
    assert outs[:3] == [[], [], []]  # 1 create + 3 UBWA attempts fit in 5
    last = outs[3]
    assert last[0] == StopStream("s1") and states(last) == [HealthState.RECONNECTING]
    wait = last[-1]
    assert isinstance(wait, ScheduleRecreate) and wait.delay_ms > 290_000
    assert w.on_signal("s1", "RESTART", "refused", 500) == []  # not ours any more
    assert w.recreate_due(100 + wait.delay_ms + 400) == [CreateStream()]


def test_market_stream_has_no_watchdog_and_no_gaps() -> None:
    w = watch(StreamRole.MARKET)
    assert w.gap_reason is None
    w.start(0)
    w.created("m1", 0)
    out = w.on_signal("m1", "CONNECT", None, 1)
    assert states(out) == [HealthState.CONNECTED] and gaps(out) == []  # prices are snapshots: no first gap
    # quiet for long is reported (prices are polled meanwhile), but never recreates it nor opens a gap
    assert states(w.on_tick(10**6, None)) == [HealthState.QUIET] and gaps(w.on_tick(2 * 10**6, None)) == []
    w.on_signal("m1", "DISCONNECT", None, 10**6)
    assert gaps(w.on_signal("m1", "CONNECT", None, 10**6 + 1)) == []


def test_subscribe_rejection_parsing() -> None:
    assert subscribe_rejection("userDataStream.subscribe.signature failed: code=-1022 msg=x") == -1022
    assert subscribe_rejection("userDataStream.subscribe.signature failed: no code") == 0
    assert subscribe_rejection("KeyError('data')") is None
    assert subscribe_rejection(None) is None
