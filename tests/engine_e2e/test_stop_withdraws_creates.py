"""`Engine.stop()` sends nothing new: creates held back by the order-rate limit (the simulator's 10 orders per 10 s)
are withdrawn when the stop begins and their callers hear `shutting_down`, whatever the stop. Before, they went
out over the next 2-25 s of the stop — after the user stream had stopped, so their fills went unseen — the stop
took that long, `graceful=False` left them open, and the summary counted orders that never left."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from engine.api import Accepted, Engine, EventKind, RefusalReason
from engine.clock import SystemClock
from engine.config import Config
from sim import RateLimitConfig, Simulator
from tests.engine_e2e._engine_sim_helpers import Events
from tests.engine_e2e._stack import rich_sim_config

ORDERS = 24


@pytest.mark.parametrize("graceful", [False, True])
def test_creates_not_sent_when_the_stop_begins_never_leave(graceful: bool, tmp_path: Path) -> None:
    config = Config.model_validate({
        "exchange": {"pair_whitelist": ["BTC/USDT"]},
        "execution": {"limit_timeout_s": "600", "conflict_policy": "parallel"},
        "risk": {"max_order_notional": "1000000", "max_open_orders_per_pair": 100},
    })  # fmt: skip
    sim_config = rich_sim_config(3, ["BTCUSDT"]).model_copy(update={"rate_limits": RateLimitConfig(orders_per_10s=10)})
    with Simulator(sim_config) as sim:
        engine = Engine.start(config, clock=SystemClock(), sim=sim, database_url=f"sqlite:///{tmp_path}/e.sqlite3",
                              spool_path=tmp_path / "spool.jsonl")  # fmt: skip
        events = Events()
        engine.subscribe(events)
        try:
            placed = [engine.place_order("BTC/USDT", "buy", "0.001", str(59_000 - i)) for i in range(ORDERS)]
            events.wait_for(EventKind.ACCEPTED, count=10)  # the window's 10: the rest wait for the next one
            summary = engine.stop(graceful=graceful)
        finally:
            engine.stop(graceful=False)
        orders = sim.control.ledger()["orders"]
    # At the exchange: those sent before the stop (the first window's ten, any a new window let out, one on the wire
    # as the stop began), each acknowledged; every other request heard it was never sent.
    sent = len(orders)
    answers = Counter("accepted" if isinstance(o, Accepted) else o.reason for o in (p.result(10) for p in placed))
    # Not sent: withdrawn (shutting_down), or, under on_shutdown = cancel, canceled by the stop before it left (a
    # create waiting to be sent again after a -1015).
    unsent = answers[RefusalReason.SHUTTING_DOWN] + (answers[RefusalReason.CANCELED] if graceful else 0)
    assert answers["accepted"] == sent and unsent == ORDERS - sent, answers
    if graceful:  # on_shutdown = cancel: those at the exchange canceled, the others withdrawn (nothing there)
        assert summary == {"canceled": sent, "open": 0, "withdrawn": ORDERS - sent}, summary
        assert {o["status"] for o in orders} == {"CANCELED"}
    else:  # left as they are: those at the exchange open (and any whose answer the stop did not wait for); a
        # request waiting to send again (a -1015) is resumed by a restart, not withdrawn
        assert summary["canceled"] == 0 and summary["open"] >= sent, summary
        assert summary["withdrawn"] > 0 and summary["open"] + summary["withdrawn"] <= ORDERS, summary
        assert {o["status"] for o in orders} == {"NEW"}
