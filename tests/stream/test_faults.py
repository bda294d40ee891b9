"""Stream faults with the real UBWA against the simulator: every gap is noticed, repaired and reported."""

from __future__ import annotations

import pytest
from loguru import logger

from actors.stream import FIRST_SUBSCRIPTION, THROTTLE_MIN_DELAY_MS, HealthState, StreamSettings
from sim import FaultSpec
from tests.stream._helpers import Recorder, Running, place_limit, running_sim, stream_actor


def _connected(rec: Recorder, n: int = 1) -> None:
    rec.wait(lambda r: r.connected_count() >= n, what=f"{n} user connect(s)")


def _events_flow(run: Running, cid: str) -> None:
    """A new order's report arrives on the current subscription."""
    place_limit(run.sim, "BTCUSDT", cid, "60000")
    run.rec.wait(lambda r: any(e.client_order_id == cid for e in r.executions()), what=f"report for {cid}")


@pytest.mark.parametrize("how", ["close", "abort"])
def test_disconnect_reconnects_and_fires_a_gap(how: str) -> None:
    with running_sim() as sim, stream_actor(sim) as run:
        _connected(run.rec)
        first = run.proxy.stream_ids().get(timeout=5)["user"]
        assert (sim.control.close_ws("user") if how == "close" else sim.control.abort_ws("user")) == 1
        run.rec.wait(lambda r: r.gaps == [FIRST_SUBSCRIPTION, "disconnect"], what="gap after reconnect")
        assert sim.control.wait_subscriptions(1)
        states = run.rec.states()
        assert states[-2:] == [HealthState.RECONNECTING, HealthState.CONNECTED]
        assert run.proxy.stream_ids().get(timeout=5)["user"] == first  # UBWA reconnected the same stream
        assert run.rec.health[-1].reconnects == 1
        _events_flow(run, f"after-{how}")
        assert run.attempts() == 2


@pytest.mark.parametrize("event", ["eventStreamTerminated", "serverShutdown"])
def test_terminated_or_shutdown_recreates_the_stream(event: str) -> None:
    with running_sim() as sim, stream_actor(sim) as run:
        _connected(run.rec)
        first = run.proxy.stream_ids().get(timeout=5)["user"]
        if event == "eventStreamTerminated":
            assert sim.control.event_stream_terminated() == 1
        else:
            assert sim.control.server_shutdown() == 1
        run.rec.wait(lambda r: r.gaps == [FIRST_SUBSCRIPTION, event], what=f"gap after {event}")
        second = run.proxy.stream_ids().get(timeout=5)["user"]
        assert second not in (None, first)
        assert sim.control.wait_subscriptions(1)  # the old connection is gone, one subscription left
        _events_flow(run, "after-recreate")
        assert run.rec.errors == []


def test_silent_stall_is_noticed_by_the_watchdog() -> None:
    # UBWA's own keepalive (ping 5 s / timeout 10 s) is far slower than the manual clock: the watchdog wins.
    with running_sim() as sim, stream_actor(sim, watchdog_silence_ms=3_000) as run:
        _connected(run.rec)
        first = run.proxy.stream_ids().get(timeout=5)["user"]
        run.advance(2_500)  # quiet but healthy: probes are answered, nothing is declared silent
        run.proxy.stream_ids().get(timeout=5)  # barrier: the ticks are handled
        assert HealthState.SILENT not in run.rec.states()
        assert sim.control.stall_ws("user") == 1
        run.advance_until(lambda r: HealthState.SILENT in r.states(), what="silent")
        run.rec.wait(lambda r: r.gaps == [FIRST_SUBSCRIPTION, "silence"], what="gap after silence")
        assert run.proxy.stream_ids().get(timeout=5)["user"] != first
        _events_flow(run, "after-stall")


def test_rejected_subscription_is_fatal_without_a_retry_storm() -> None:
    with running_sim() as sim, stream_actor(sim, api_secret="wrong-secret") as run:
        run.rec.wait(lambda r: HealthState.FATAL in r.states(), what="fatal")
        fatal = run.rec.health[-1]
        assert "code=-1022" in fatal.reason
        weight_at_fatal = sim.core.limiter.used_weight("127.0.0.1", sim.core.now())
        run.advance(10 * 60_000, step_ms=1_000)  # ten minutes of watchdog ticks and backoff timers
        run.proxy.stream_ids().get(timeout=5)
        assert run.attempts() == 1
        assert run.rec.states()[-1] is HealthState.FATAL and run.rec.gaps == []
        # The simulator saw one clock-offset request (1 weight), one WS API connection and subscribe (2 weight
        # each), at most one watchdog probe (session.status, 2 weight) and nothing after.
        assert weight_at_fatal <= 7
        assert sim.core.limiter.used_weight("127.0.0.1", sim.core.now()) == weight_at_fatal
        assert run.proxy.stream_ids().get(timeout=5)["user"] is None


def _rate_limited(rec: Recorder) -> list[str]:
    return [h.reason for h in rec.health if h.reason.startswith("rate limited (code=-1003)")]


def test_a_rate_limited_rejection_is_retried_slowly_and_never_turns_fatal() -> None:
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m.record["message"])), level="WARNING", format="{message}")
    try:
        with running_sim() as sim:
            # No count: the simulator also spends counts on other WS API requests (the watchdog's probes).
            fault = sim.control.add_fault(
                FaultSpec(kind="reject_subscribe", target="ws-api", status=429, code=-1003, msg="Too many requests.")
            )
            with stream_actor(sim) as run:
                # The backoff's cap (30 s by default), as it is above THROTTLE_MIN_DELAY_MS.
                floor = max(StreamSettings().max_reconnect_backoff_ms, THROTTLE_MIN_DELAY_MS)
                run.rec.wait(lambda r: len(_rate_limited(r)) == 1, what="first rejection")
                # Retried past max_rejections (3) — each only after the floor — and never fatal.
                for n in range(2, 6):
                    run.advance(floor - 1_000, step_ms=1_000)
                    assert run.attempts() == n - 1, "retried before the floor"
                    run.advance_until(lambda r, n=n: r.states().count(HealthState.CONNECTING) == n, "retry", 1_000)
                    run.rec.wait(lambda r, n=n: len(_rate_limited(r)) == n, what=f"rejection {n}")
                assert "refusal 5 in a row" in run.rec.health[-1].reason
                states = run.rec.states()
                assert HealthState.FATAL not in states
                assert states.count(HealthState.UNREPAIRABLE) == 1  # the supervisor alerts once per episode
                assert sim.control.remove_fault(fault)
                run.advance(floor - 1_000, step_ms=1_000)
                # Stop moving the clock once the retry is under way: the connect runs in real time.
                run.advance_until(lambda r: r.states().count(HealthState.CONNECTING) == 6, "last retry", 1_000)
                _connected(run.rec)
                run.rec.wait(lambda r: r.gaps == [FIRST_SUBSCRIPTION], what="the first subscription's gap")
                assert run.attempts() == 6
                assert sim.control.wait_subscriptions(1)
                _events_flow(run, "after-rate-limit")
                assert run.rec.gaps == [FIRST_SUBSCRIPTION]
    finally:
        logger.remove(sink)
    assert len([w for w in warnings if "health" in w and "rate limited (code=-1003)" in w]) == 5
