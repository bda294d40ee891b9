"""Refusals by the exchange: how they are classified, and how the pure watchdog retries them (no sockets)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.stream import (
    BUSY_CODES,
    FATAL_SUBSCRIBE_CODES,
    FIRST_SUBSCRIPTION,
    RATE_LIMIT_CODES,
    THROTTLE_MIN_DELAY_MS,
    Backoff,
    ConnectionBudget,
    CreateStream,
    HealthState,
    RejectionKind,
    ReportHealth,
    ScheduleRecreate,
    StopStream,
    StreamRole,
    StreamWatch,
    classify_rejection,
    stream_rejection,
)
from tests.stream.test_watch import gaps, live, states, watch

NOW = 1_767_225_600_000


def _refused(code: int, msg: str = "x") -> str:
    return f"userDataStream.subscribe.signature failed: code={code} msg={msg}"


def _reports(decisions: list[object]) -> list[ReportHealth]:
    return [d for d in decisions if isinstance(d, ReportHealth)]


def _delay(decisions: list[object]) -> int:
    last = decisions[-1]
    assert isinstance(last, ScheduleRecreate)
    return last.delay_ms


def _rejected_again(w: StreamWatch, sid: str, error: str, now: int) -> list[object]:
    """The scheduled recreate runs, the new stream is created and its subscription refused."""
    assert w.recreate_due(now) == [CreateStream()]
    w.created(sid, now)
    return list(w.on_signal(sid, "STREAM_UNREPAIRABLE", error, now))


# ---------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("code", "status", "kind", "label"),
    [
        (-1003, None, RejectionKind.THROTTLED, "rate limited (code=-1003)"),
        (-1015, 429, RejectionKind.THROTTLED, "rate limited (code=-1015)"),
        (-1008, None, RejectionKind.THROTTLED, "exchange busy (code=-1008)"),
        (-1001, None, RejectionKind.THROTTLED, "exchange busy (code=-1001)"),
        (-1007, None, RejectionKind.THROTTLED, "exchange busy (code=-1007)"),
        (None, 429, RejectionKind.THROTTLED, "rate limited (HTTP 429)"),
        (None, 418, RejectionKind.THROTTLED, "rate limited (HTTP 418)"),
        (None, 503, RejectionKind.THROTTLED, "exchange busy (HTTP 503)"),
        (-2015, 401, RejectionKind.FATAL, "rejected (code=-2015)"),
        (-1022, None, RejectionKind.FATAL, "rejected (code=-1022)"),
        (None, 403, RejectionKind.THROTTLED, "blocked (HTTP 403)"),  # a WAF block, as REST maps it
        (-2015, 403, RejectionKind.FATAL, "rejected (code=-2015)"),  # the code decides
        (-1999, 400, RejectionKind.OTHER, "rejected (code=-1999)"),
        (0, None, RejectionKind.OTHER, "rejected (code=0)"),
    ],
)
def test_classification(code: int | None, status: int | None, kind: RejectionKind, label: str) -> None:
    rejection = classify_rejection(code, status)
    assert rejection.kind is kind and rejection.label == label


def test_code_sets_do_not_overlap() -> None:
    assert not (FATAL_SUBSCRIBE_CODES & RATE_LIMIT_CODES) and not (FATAL_SUBSCRIBE_CODES & BUSY_CODES)


def test_ubwa_error_texts() -> None:
    assert stream_rejection(_refused(-1003), NOW) == classify_rejection(-1003)
    ban = _refused(-1003, f"Way too much request weight used; IP banned until {NOW + 120_000}. Please use …")
    banned = stream_rejection(ban, NOW)
    assert banned is not None and banned.kind is RejectionKind.THROTTLED and banned.retry_after_ms == 120_000
    handshake = stream_rejection("server rejected WebSocket connection: HTTP 429", NOW)
    assert handshake is not None and handshake.status == 429 and handshake.kind is RejectionKind.THROTTLED
    # Not refusals: a broken socket, a handshake status UBWA retries by itself anyway.
    assert stream_rejection("socket died", NOW) is None
    assert stream_rejection("server rejected WebSocket connection: HTTP 404", NOW) is None
    assert stream_rejection(None, NOW) is None
    # A retry-after is never negative nor longer than Binance's longest ban (three days).
    assert classify_rejection(-1003, 418, -5).retry_after_ms == 0
    assert classify_rejection(-1003, 418, 10**12).retry_after_ms == 3 * 86_400_000


# ---------------------------------------------------------------------- the watchdog


def test_rate_limited_rejections_are_retried_slowly_never_fatal_and_alert_once() -> None:
    w = watch()  # backoff 100..5000 ms: the floor is THROTTLE_MIN_DELAY_MS
    assert w.throttle_floor_ms == THROTTLE_MIN_DELAY_MS
    w.start(0)
    w.created("s1", 0)
    err = _refused(-1003, "Too much request weight used")
    now, outs = 0, [list(w.on_signal("s1", "STREAM_UNREPAIRABLE", err, 0))]
    for n in range(2, 3 * w.max_rejections + 1):  # well past max_rejections
        now += _delay(outs[-1])
        outs.append(_rejected_again(w, f"s{n}", err, now))
    reports = [r for out in outs for r in _reports(out)]
    # The first refusal of the episode is unrepairable (the supervisor alerts), the retries only reconnecting.
    assert [r.health.state for r in reports] == [HealthState.UNREPAIRABLE] + [HealthState.RECONNECTING] * (
        len(outs) - 1
    )
    assert all(r.warn and r.health.reason.startswith("rate limited (code=-1003)") for r in reports)
    assert "refusal 9 in a row" in reports[-1].health.reason
    for out in outs:
        assert THROTTLE_MIN_DELAY_MS <= _delay(out) <= THROTTLE_MIN_DELAY_MS * 5 // 4
    assert w.rejections == 0 and w.phase == "backoff"
    # Then it goes through: live, the first subscription's gap, and the episode is over.
    assert w.recreate_due(now + _delay(outs[-1])) == [CreateStream()]
    w.created("s99", now)
    w.on_signal("s99", "CONNECT", None, now)
    out = w.on_probe_reply("s99", True, now)
    assert states(out) == [HealthState.CONNECTED] and gaps(out) == [FIRST_SUBSCRIPTION]
    assert w.throttled == 0
    # A new episode alerts again.
    w.on_signal("s99", "DISCONNECT", None, now + 1)
    out = w.on_signal("s99", "STREAM_UNREPAIRABLE", err, now + 2)
    assert states(out) == [HealthState.UNREPAIRABLE]


def test_a_ban_is_waited_out_and_a_short_backoff_cap_still_gets_the_floor() -> None:
    w = StreamWatch(
        StreamRole.USER,
        backoff=Backoff(100, 1_000, random.Random(3)),
        budget=ConnectionBudget(300, 300_000),
        silence_ms=3_000,
        reconnect_grace_ms=2_000,
    )
    w.start(NOW)
    w.created("s1", NOW)
    ban = _refused(-1003, f"Way too much request weight used; IP banned until {NOW + 600_000}.")
    assert 600_000 <= _delay(w.on_signal("s1", "STREAM_UNREPAIRABLE", ban, NOW)) <= 750_000
    out = _rejected_again(w, "s2", _refused(-1008, "Server is currently overloaded"), NOW + 600_000)
    assert _delay(out) >= THROTTLE_MIN_DELAY_MS  # not the 1 s cap: a refusal earns at least the floor
    assert _reports(out)[0].health.reason.startswith("exchange busy (code=-1008)")


def test_unknown_rejections_are_not_excused_by_rate_limits_in_between() -> None:
    w = watch()
    w.start(0)
    w.created("s1", 0)
    w.on_signal("s1", "STREAM_UNREPAIRABLE", _refused(-1999), 0)
    outs = [_rejected_again(w, "s2", _refused(-1003), 10**6)]
    outs.append(_rejected_again(w, "s3", _refused(-1999), 2 * 10**6))
    outs.append(_rejected_again(w, "s4", _refused(-1999), 3 * 10**6))
    assert [states(o) for o in outs] == [[HealthState.UNREPAIRABLE], [HealthState.UNREPAIRABLE], [HealthState.FATAL]]


@pytest.mark.parametrize("code", sorted(FATAL_SUBSCRIBE_CODES))
def test_auth_rejections_are_fatal_at_once(code: int) -> None:
    w = watch()
    w.start(0)
    w.created("s1", 0)
    assert states(w.on_signal("s1", "STREAM_UNREPAIRABLE", _refused(code), 1)) == [HealthState.FATAL]
    assert w.recreate_due(10**7) == []


def test_a_banned_handshake_stops_ubwas_retry_loop_at_once() -> None:
    w = watch()
    live(w)
    w.on_signal("s1", "DISCONNECT", None, 100)
    out = w.on_signal("s1", "RESTART", "server rejected WebSocket connection: HTTP 418", 110)
    assert out[0] == StopStream("s1") and states(out) == [HealthState.UNREPAIRABLE]
    assert _delay(out) >= THROTTLE_MIN_DELAY_MS and w.gap_reason == "disconnect"
    assert "rate limited (HTTP 418)" in _reports(out)[0].health.reason
    assert w.on_signal("s1", "RESTART", "server rejected WebSocket connection: HTTP 418", 200) == []  # not ours


def test_listen_key_refusals() -> None:
    w = watch()
    w.start(0)
    out = w.create_failed("POST userDataStream: HTTP 429 Too much", classify_rejection(-1003, 429, 90_000), 0)
    assert states(out) == [HealthState.UNREPAIRABLE] and 90_000 <= _delay(out) <= 112_500
    assert w.recreate_due(_delay(out)) == [CreateStream()]
    out = w.create_failed("POST userDataStream: timed out", None, _delay(out))  # no answer: plain backoff
    assert states(out) == [HealthState.UNREPAIRABLE] and _delay(out) < THROTTLE_MIN_DELAY_MS
    assert w.recreate_due(10**6) == [CreateStream()]
    assert states(w.create_failed("HTTP 401", classify_rejection(-2015, 401), 10**6)) == [HealthState.FATAL]


_THROTTLED = st.sampled_from(sorted(RATE_LIMIT_CODES | BUSY_CODES))


@given(st.lists(st.tuples(_THROTTLED, st.integers(0, 3_600_000), st.booleans()), min_size=1, max_size=40))
def test_throttled_rejections_never_turn_fatal_and_wait_as_asked(steps: list[tuple[int, int, bool]]) -> None:
    """Whatever the codes, bans and successes in between: never fatal, never sooner than asked, one alert each
    episode."""
    w = watch()
    w.start(NOW)
    now = NOW
    alerts = episodes = 0
    for sid, (code, ban_ms, goes_live) in enumerate(steps, start=1):
        w.created(f"s{sid}", now)
        if goes_live:
            w.on_signal(f"s{sid}", "CONNECT", None, now)
            w.on_probe_reply(f"s{sid}", True, now)
            w.on_signal(f"s{sid}", "DISCONNECT", None, now)
        msg = f"IP banned until {now + ban_ms}." if code == -1003 else "busy"
        out = w.on_signal(f"s{sid}", "STREAM_UNREPAIRABLE", _refused(code, msg), now)
        episodes += goes_live or sid == 1
        alerts += states(out).count(HealthState.UNREPAIRABLE)
        assert w.phase == "backoff" and w.rejections == 0
        wanted = max(THROTTLE_MIN_DELAY_MS, ban_ms if code == -1003 else 0)
        assert wanted <= _delay(out) <= wanted * 5 // 4  # the backoff's own delays are all under the floor
        now += _delay(out)
        assert w.recreate_due(now) == [CreateStream()]
    assert alerts == episodes
