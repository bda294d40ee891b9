"""Stream faults with the real UBWA against the simulator: every gap is noticed, repaired and reported."""

from __future__ import annotations

import pytest

from actors.stream import HealthState
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
        run.rec.wait(lambda r: r.gaps == ["disconnect"], what="gap after reconnect")
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
        run.rec.wait(lambda r: r.gaps == [event], what=f"gap after {event}")
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
        run.rec.wait(lambda r: r.gaps == ["silence"], what="gap after silence")
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
        # The simulator saw one WS API connection and subscribe (2 weight each) and nothing after.
        assert weight_at_fatal <= 4
        assert sim.core.limiter.used_weight("127.0.0.1", sim.core.now()) == weight_at_fatal
        assert run.proxy.stream_ids().get(timeout=5)["user"] is None


def test_a_transient_rejection_is_retried_with_backoff() -> None:
    with running_sim() as sim:
        account = sim.accounts[0].name
        # No count: the simulator also spends counts on other WS API requests (the watchdog's probes).
        fault = sim.control.add_fault(
            FaultSpec(kind="reject_subscribe", target="ws-api", status=429, code=-1003, msg="Too many")
        )
        with stream_actor(sim) as run:
            run.rec.wait(lambda r: r.states().count(HealthState.UNREPAIRABLE) == 1, what="first rejection")
            # First retry is immediate; the second waits for the backoff timer on the manual clock.
            run.rec.wait(lambda r: r.states().count(HealthState.UNREPAIRABLE) == 2, what="second rejection")
            assert "reconnecting in" in run.rec.health[-1].reason
            assert sim.control.remove_fault(fault)
            run.advance(30_000)
            _connected(run.rec)
            run.rec.wait(lambda r: len(r.gaps) == 1, what="one gap after recovery")
            assert run.attempts() == 3
            assert sim.control.wait_subscriptions(1)
            _events_flow(run, f"after-reject-{account}")
