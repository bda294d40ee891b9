"""Soak: a seeded run of many faults in a row; after each, the gap fires once and events flow again."""

from __future__ import annotations

import random

import pytest

from actors.stream import HealthState
from tests.stream._helpers import place_limit, running_sim, stream_actor

FAULTS = ["close", "abort", "terminated", "shutdown", "stall"]
EXPECTED_GAP = {
    "close": "disconnect",
    "abort": "disconnect",
    "terminated": "eventStreamTerminated",
    "shutdown": "serverShutdown",
    "stall": "silence",
}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_many_faults_in_a_row(seed: int) -> None:
    rng = random.Random(seed)
    plan = [rng.choice(FAULTS) for _ in range(40)]
    with running_sim(seed=seed) as sim, stream_actor(sim, seed=seed, watchdog_silence_ms=3_000) as run:
        run.rec.wait(lambda r: r.connected_count() == 1, what="connected")
        for n, fault in enumerate(plan, start=1):
            if fault == "close":
                sim.control.close_ws("user")
            elif fault == "abort":
                sim.control.abort_ws("user")
            elif fault == "terminated":
                sim.control.event_stream_terminated()
            elif fault == "shutdown":
                sim.control.server_shutdown()
            else:
                silent = run.rec.states().count(HealthState.SILENT)
                sim.control.stall_ws("user")
                # Stop moving the clock once the watchdog reacted: the reconnect runs in real time.
                run.advance_until(lambda r, k=silent: r.states().count(HealthState.SILENT) > k, what="silent")
            # One gap per fault, after the first subscription's.
            run.rec.wait(lambda r, n=n: len(r.gaps) == n + 1, what=f"gap {n} after {fault}")
            assert run.rec.gaps[-1] == EXPECTED_GAP[fault]
            cid = f"soak-{seed}-{n}"
            place_limit(sim, "BTCUSDT", cid, "60000")
            run.rec.wait(lambda r, cid=cid: cid in {e.client_order_id for e in r.executions()}, what=cid)
            sim.control.cancel_external_order(account=None, symbol="BTCUSDT", client_order_id=cid)
        assert run.rec.states()[-1] is HealthState.CONNECTED
        assert HealthState.FATAL not in run.rec.states()
        assert run.rec.errors == []
        # Every order placed while the stream was live was reported.
        cids = {e.client_order_id for e in run.rec.executions() if e.client_order_id.startswith("soak-")}
        assert cids == {f"soak-{seed}-{n}" for n in range(1, len(plan) + 1)}
