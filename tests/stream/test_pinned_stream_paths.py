"""Behaviour a mutation test of the stream watch found unpinned (each test failed with its mutant applied)."""

from __future__ import annotations

from actors.stream import HealthState
from tests.stream._watch_helpers import states, watch


def test_other_rejections_are_counted_in_a_row_only_a_live_stream_starts_the_count_again() -> None:
    # S16 (_watch.py:173): two unexplained refusals, a live stream, two more: not fatal (never three in a row).
    w = watch()
    w.start(0)
    err = "userDataStream.subscribe.signature failed: code=-1999 msg=Something new"
    now, seen = 0, []
    for episode in range(2):
        for _ in range(2):
            w.created(f"s{now}", now)
            seen.append(states(w.on_signal(f"s{now}", "STREAM_UNREPAIRABLE", err, now)))
            now += 10**6
            w.recreate_due(now)
        if episode == 0:  # the next one subscribes: live again
            sid = f"s{now}"
            w.created(sid, now)
            w.on_signal(sid, "CONNECT", None, now)
            assert states(w.on_probe_reply(sid, True, now)) == [HealthState.CONNECTED]
            w.on_terminated(sid, now)
            now += 10**6
            w.recreate_due(now)
    assert seen == [[HealthState.UNREPAIRABLE]] * 4


def test_a_restart_while_live_that_stops_ubwas_loop_opens_a_gap() -> None:
    # S32 (_watch.py:271) / S31 (:267): UBWA's on_restart hook can reach the actor before its DISCONNECT signal
    # (another callback); a restart over the connection budget ends the stream: the outage must be reconciled.
    from actors.stream import CreateStream
    from tests.stream._watch_helpers import gaps, live

    w = watch(limit=1)
    live(w, "s1", 0)  # spends the only connection of the window
    out = w.on_signal("s1", "RESTART", "connection closed", 10)  # over budget: UBWA's loop stopped
    assert out[-1].delay_ms > 0  # type: ignore[union-attr]
    assert w.recreate_due(10 + out[-1].delay_ms) == [CreateStream()]  # type: ignore[union-attr]
    now = 10 + out[-1].delay_ms  # type: ignore[union-attr]
    w.created("s2", now)
    w.on_signal("s2", "CONNECT", None, now)
    assert gaps(w.on_probe_reply("s2", True, now)) == ["disconnect"]


def test_a_live_stream_that_ubwa_gives_up_on_opens_a_gap() -> None:
    # S33 (_watch.py:279): STREAM_UNREPAIRABLE on a live stream (a broken socket, no refusal, no DISCONNECT
    # handled first): the events of the outage are lost, the next live subscription must fire a gap.
    from actors.stream import CreateStream
    from tests.stream._watch_helpers import gaps, live

    w = watch()
    live(w, "s1", 0)
    out = w.on_signal("s1", "STREAM_UNREPAIRABLE", "socket closed unexpectedly", 10)
    assert states(out) == [HealthState.UNREPAIRABLE]
    now = 10 + out[-1].delay_ms  # type: ignore[union-attr]
    assert w.recreate_due(now) == [CreateStream()]
    w.created("s2", now)
    w.on_signal("s2", "CONNECT", None, now)
    assert gaps(w.on_probe_reply("s2", True, now)) == ["unrepairable"]


def test_a_refusal_without_a_code_is_fatal_at_once() -> None:
    # S34 (_watch.py:288)
    w = watch()
    w.start(0)
    w.created("s1", 0)
    out = w.on_signal("s1", "STREAM_UNREPAIRABLE", "userDataStream.subscribe.signature failed: msg=?", 0)
    assert states(out) == [HealthState.FATAL]


def test_an_http_500_is_the_exchange_s_trouble_not_a_refusal() -> None:
    # R03 (_rejections.py:125)
    from actors.stream._rejections import RejectionKind, classify_rejection

    assert classify_rejection(None, 500).kind is RejectionKind.THROTTLED
