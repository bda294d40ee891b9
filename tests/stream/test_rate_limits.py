"""The stream actor (real UBWA) against the simulator's WebSocket rate limits: request weight shared with REST,
IP bans, refused handshakes. The simulator runs on the test's manual clock, so its weight windows and bans move
with the actor's timers (the subscription is signed with the offset the actor measures, which follows).

The actor signs its subscription by the same manual clock (`wall_ms`), as the host clock it stands for. The manual
clock runs ahead of real time: each test moves it only once the actor has seen what the previous step caused (a
health report, a connection), so a reply still on the wire is never mistaken for silence or a connect timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

from actors.stream import FIRST_SUBSCRIPTION, HealthState
from engine.clock import ManualClock
from sim import FaultSpec
from tests.stream._helpers import Recorder, Running, on_sim_loop, running_sim, stream_actor

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sim import Simulator

IP = "127.0.0.1"
T0 = 1_767_225_600_000  # a minute boundary
LIMITS = {"request_weight_per_minute": 40, "ban_after_violations": 3}


def _used(run: Running) -> int:
    async def used() -> int:
        return run.sim.core.limiter.used_weight(IP, run.sim.core.now())

    return on_sim_loop(run.sim, used())


def _banned_until(run: Running) -> int:
    async def until() -> int:
        return run.sim.core.limiter.banned_until(IP, run.sim.core.now())

    return on_sim_loop(run.sim, until())


def _spend_weight(run: Running, limit: int) -> None:
    """REST requests (weight 1 each) until the IP's minute is spent, without going over."""
    while _used(run) < limit:
        assert requests.get(run.sim.urls.rest + "/api/v3/ping", timeout=5).status_code == 200


def _held(rec: Recorder, status: int) -> bool:
    return any(f"watchdog probe rate limited (HTTP {status})" in h.reason for h in rec.health)


def _subscriptions(rec: Recorder) -> int:
    """Subscriptions proven live (a held watchdog reports `connected` too, with another reason)."""
    return sum(1 for h in rec.health if h.state is HealthState.CONNECTED and h.reason == "subscribed")


def _steps(run: Running, until_ms: int, step_ms: int) -> None:
    """Advance to `until_ms` in steps, each a barrier on the actor."""
    while run.clock.now_ms() < until_ms:
        run.advance(min(step_ms, until_ms - run.clock.now_ms()))
        run.proxy.stream_ids().get(timeout=5)


def _next_attempt(run: Running) -> None:
    """Advance until the watch makes its next connection attempt, then wait (in real time) for its outcome."""
    seen = len(run.rec.health)
    run.advance_until(lambda r: len(r.health) > seen, "the next attempt", 1_000)
    run.rec.wait(lambda r: r.health[-1].state is not HealthState.CONNECTING, what="the attempt's outcome")


def _actor(sim: Simulator, clock: ManualClock) -> AbstractContextManager[Running]:
    return stream_actor(sim, clock=clock, wall_ms=clock.now_ms, watchdog_silence_ms=3_000)


def _events_flow(run: Running) -> None:
    before = len(run.rec.reports)
    run.sim.control.credit(None, "USDT", "1")
    run.rec.wait(lambda r: len(r.reports) > before, what="an account event on the subscription")


def test_watchdog_probes_stop_at_a_429_instead_of_earning_a_ban() -> None:
    # REST spent the IP's weight for this minute (the WS API shares it). The watchdog's probe (session.status,
    # weight 2) is refused with 429 and data.retryAfter: probing on past it every second is what bans an IP (418),
    # and declaring the stream silent meanwhile reconnected into a refused handshake.
    clock = ManualClock(T0)
    with running_sim(clock, rate_limits=LIMITS) as sim, _actor(sim, clock) as run:
        run.rec.wait(lambda r: _subscriptions(r) == 1, what="subscribed")
        _spend_weight(run, 40)
        run.advance(1_000)  # the first probe is due
        run.rec.wait(lambda r: _held(r, 429), what="the probe refused with 429 holds the watchdog")
        held = run.rec.health[-1]
        assert held.state is HealthState.CONNECTED and "for 59000 ms" in held.reason, held  # until the minute's end
        _steps(run, T0 + 59_000, 1_000)  # quiet, held: no probe, no silence, no reconnect
        assert _banned_until(run) == 0 and _used(run) == 40  # nothing more reached the simulator
        assert run.rec.states()[-1] is HealthState.CONNECTED and run.attempts() == 1
        _steps(run, T0 + 61_000, 1_000)  # the next minute: probing resumes (and is answered)
        _events_flow(run)
        assert _banned_until(run) == 0 and run.attempts() == 1
        assert HealthState.SILENT not in run.rec.states() and run.rec.gaps == [FIRST_SUBSCRIPTION]


def test_a_ban_holds_reconnects_until_it_ends_even_when_the_exchange_disconnects() -> None:
    # Banned (418) while connected: the probe's refusal names the ban's end. The exchange then drops the
    # connection ("an automated IP ban and you will be disconnected"): UBWA's 0.1 s reconnect loop would knock on a
    # refused handshake until the ban ends; the watch stops it and comes back once the ban is over.
    clock = ManualClock(T0)
    with running_sim(clock) as sim, _actor(sim, clock) as run:
        run.rec.wait(lambda r: _subscriptions(r) == 1, what="subscribed")
        assert sim.control.ban_ip(300) == T0 + 300_000
        run.advance(1_000)
        run.rec.wait(lambda r: _held(r, 418), what="the probe refused with 418 holds the watchdog")
        assert "for 299000 ms" in run.rec.health[-1].reason
        assert sim.control.close_ws("user") == 1
        run.rec.wait(lambda r: "disconnected while rate limited" in r.health[-1].reason, what="reconnect held")
        reconnect = run.rec.health[-1]
        assert reconnect.state is HealthState.RECONNECTING
        delay = int(reconnect.reason.rsplit("reconnecting in ", 1)[1].split()[0])
        assert 299_000 <= delay <= 299_000 + 30_000, reconnect.reason  # the ban's end, plus jitter
        attempts = run.attempts()
        assert attempts <= 3  # the first, and at most what UBWA tried before its loop was stopped
        _steps(run, T0 + 1_000 + delay - 1_000, 10_000)
        assert run.attempts() == attempts, "reconnected during the ban"
        _next_attempt(run)
        run.rec.wait(lambda r: _subscriptions(r) == 2, what="connected once the ban is over")
        run.rec.wait(lambda r: r.gaps == [FIRST_SUBSCRIPTION, "disconnect"], what="the disconnect's gap")
        assert run.attempts() == attempts + 1
        _events_flow(run)


def test_a_handshake_refused_for_a_ban_is_retried_slowly_alerted_once_and_recovers() -> None:
    # Banned before the stream connects: the handshake is refused with 418 and nothing says until when (UBWA
    # passes on only "HTTP 418"). Retried at the throttle floor (30 s and jitter), never fatal, one alert.
    clock = ManualClock(T0)
    with running_sim(clock) as sim:
        sim.control.ban_ip(120)
        with _actor(sim, clock) as run:
            run.rec.wait(lambda r: HealthState.UNREPAIRABLE in r.states(), what="the refused handshake")
            assert "rate limited (HTTP 418)" in run.rec.health[-1].reason
            first = run.attempts()
            assert first <= 3  # the first, and at most what UBWA tried before its loop was stopped
            while _subscriptions(run.rec) == 0:
                _next_attempt(run)
                assert run.clock.now_ms() < T0 + 120_000 + 40_000, "not connected after the ban"
            assert run.clock.now_ms() >= T0 + 120_000
            states = run.rec.states()
            assert states.count(HealthState.UNREPAIRABLE) == 1 and HealthState.FATAL not in states
            # 120 s of ban at one try per 30-37.5 s: a handful of tries, not UBWA's ten a second (each try may
            # count twice: UBWA knocks once more, 0.1 s later, before its loop is stopped).
            tries = states.count(HealthState.CONNECTING)
            assert tries <= 5 and run.attempts() <= 2 * tries, (tries, run.attempts())
            run.rec.wait(lambda r: r.gaps == [FIRST_SUBSCRIPTION], what="the first subscription's gap")
            _events_flow(run)


def test_a_handshake_refused_with_429_is_not_fatal_and_waits_the_floor() -> None:
    # UBWA treats a 429 at the handshake as fatal for its stream (no retry of its own): the watch retries, slowly.
    clock = ManualClock(T0)
    with running_sim(clock) as sim:
        sim.control.add_fault(FaultSpec(kind="handshake", target="ws-api", status=429, retry_after=40, count=2))
        with _actor(sim, clock) as run:
            run.rec.wait(lambda r: HealthState.UNREPAIRABLE in r.states(), what="the refused handshake")
            assert "rate limited (HTTP 429)" in run.rec.health[-1].reason and run.attempts() == 1
            run.advance(29_000)  # the floor is 30 s: nothing before it
            run.proxy.stream_ids().get(timeout=5)
            assert run.attempts() == 1
            _next_attempt(run)
            assert "refusal 2 in a row" in run.rec.health[-1].reason and run.attempts() == 2
            _next_attempt(run)
            run.rec.wait(lambda r: _subscriptions(r) == 1, what="connected at the third try")
            assert run.attempts() == 3 and HealthState.FATAL not in run.rec.states()
            _events_flow(run)
