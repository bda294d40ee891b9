"""The whole engine against the simulator when things go wrong: the exchange rejects an order, a create's outcome
is unknown (5xx, a timeout after the exchange accepted it), a 429 with Retry-After, a 418 ban, a crashed pair
actor, and shutting down with orders still open.

Time is a manual clock, as in test_engine_sim.py; the shared fixtures and barriers are in _engine_sim_helpers.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.api import Accepted, CancelStatus, Engine, EventKind, Refusal, RefusalReason
from engine.config import Config
from engine.domain import TradeStatus
from sim import FaultSpec, Simulator
from tests.engine_e2e import _engine_sim_helpers as _shared
from tests.engine_e2e._engine_sim_helpers import (
    LIMIT,
    NO_STREAMS,
    PAIR,
    _config,
    _gateway,
    _sim_orders,
    settle,
    sim_config,
)
from tests.engine_e2e._scale_helpers import barrier, requests_since, step
from tests.engine_e2e._stack import engine_on

# pytest fixtures from the helper, assigned rather than imported so test arguments may shadow them
sim = _shared.sim
start = _shared.start


def test_exchange_rejection_is_a_refusal_with_the_reason(start: Any, sim: Simulator) -> None:
    config = Config.model_validate(
        {
            "stream": NO_STREAMS,
            "exchange": {"pair_whitelist": ["BTC/USDT"]},
            "risk": {"max_order_notional": "10000000"},
        }
    )
    engine, events = start(config)
    outcome = engine.place_order(PAIR, "buy", "50", LIMIT).result(timeout=20)  # 3M USDT; the account has 100k
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.REJECTED
    [error] = events.wait_for(EventKind.ERROR)
    assert "InsufficientBalance" in error.message
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.status is TradeStatus.FAILED


@pytest.mark.parametrize("mode", ["cancel", "keep"])
def test_graceful_shutdown_with_open_orders(start: Any, sim: Simulator, mode: str) -> None:
    engine, _ = start(_config(on_shutdown=mode, limit_timeout_s="600"))
    outcome = engine.place_order(PAIR, "buy", "0.01", LIMIT).result(timeout=20)
    assert isinstance(outcome, Accepted)
    summary = engine.stop()
    [order] = _sim_orders(sim)
    if mode == "cancel":
        assert order["status"] == "CANCELED" and summary["canceled"] == 1 and summary["open"] == 0
    else:
        assert order["status"] == "NEW" and summary["open"] == 1


def test_crashed_pair_actor_is_restarted_without_losing_its_orders(start: Any, sim: Simulator) -> None:
    engine, events = start()
    outcome = engine.place_order(PAIR, "buy", "0.01", LIMIT).result(timeout=20)
    assert isinstance(outcome, Accepted)
    old = engine._routing.get(PAIR)
    old.crash.defer()
    for _ in range(10_000):  # each round is a barrier through the root's inbox, not a sleep
        engine._root.proxy().pair_refs().get(timeout=10)
        if engine._routing.get(PAIR) is not old:
            break
    assert engine._routing.get(PAIR) is not old
    assert [o.client_order_id for o in engine.open_orders(PAIR)] == [outcome.order.client_order_id]
    engine.ticker.advance(5_000)  # the re-armed timeout still fires and the fallback still runs
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.filled == Decimal("0.01")


@pytest.mark.parametrize(
    "fault",
    [
        FaultSpec(kind="http_error", target="POST /api/v3/order", count=1, status=503, code=-1006, execute=True),
        FaultSpec(kind="http_error", target="POST /api/v3/order", count=1, status=503, code=-1006, execute=False),
        FaultSpec(kind="withhold", target="POST /api/v3/order", count=1, hold_s=3.0),
    ],
    ids=["5xx-created", "5xx-not-created", "timeout-after-accept"],
)
def test_unknown_outcome_never_duplicates(start: Any, sim: Simulator, fault: FaultSpec) -> None:
    config = Config.model_validate(
        {
            "stream": NO_STREAMS,
            "exchange": {"pair_whitelist": ["BTC/USDT"], "request_timeout_s": "1"},
            "execution": {"limit_timeout_s": "600", "unknown_outcome_grace_s": "4"},
        }
    )
    engine, _ = start(config)
    sim.control.add_fault(fault)
    future = engine.place_order(PAIR, "buy", "0.01", LIMIT, idempotency_key=f"unknown-{fault.kind}")
    for _ in range(40):  # lookups every 2 s of engine time; after the grace period "not found" means resend
        settle(engine)
        if future.done():
            break
        engine.ticker.advance(1_000)
    outcome = future.result(timeout=10)
    assert isinstance(outcome, Accepted), outcome
    orders = _sim_orders(sim)
    assert len(orders) == 1, orders
    assert orders[0]["clientOrderId"] == outcome.order.client_order_id


@pytest.fixture
def logged_sim() -> Iterator[Simulator]:
    """The simulator of these tests, keeping a log of every request it received."""
    with Simulator(sim_config().model_copy(update={"record_requests": True})) as simulator:
        yield simulator


_HOLD_CONFIG = {
    "stream": {**NO_STREAMS, "reconcile_interval_s": "10"},  # a reconciliation round in every 10 s of the hold
    "exchange": {"pair_whitelist": ["BTC/USDT", "ETH/USDT"]},
    # No limit times out within the hold; a second buy of a pair runs beside the first.
    "execution": {"limit_timeout_s": "600", "conflict_policy": "parallel"},
}


def _hold_opened(sim: Simulator, engine: Engine) -> int:
    """Wait until the gateway has the throttled create's answer; returns the request log's length then (the log ends
    with that create: nothing else was due on the unmoved clock)."""
    gateway = _gateway(engine)
    for _ in range(10_000):  # each round is a barrier through the actors and the gateway's loop, not a sleep
        barrier(engine)
        if gateway.stats().failed:
            break
    barrier(engine)  # the create's pair actor has its answer
    log = sim.control.requests()
    assert (log[-1]["method"], log[-1]["path"]) == ("POST", "/api/v3/order"), log[-1]
    return len(log)


def test_429_holds_every_request_until_retry_after(logged_sim: Simulator, tmp_path: Path) -> None:
    # After a 429 every request waits for Retry-After: one sent meanwhile counts as another breach, and Binance bans
    # the IP for it (418; Freqtrade and Hummingbot retried 429s at once and were banned). The 429 answers a create,
    # the hold is on the whole engine: creates of the other pair, a cancel, the price polls, the reconciliation's
    # lookups and open-orders scans, the account read — nothing may reach the exchange until Retry-After is over.
    sim = logged_sim
    with engine_on(sim, tmp_path, _HOLD_CONFIG) as (engine, _):
        resting = engine.place_order(PAIR, "buy", "0.01", LIMIT).result(timeout=20)  # canceled during the hold
        kept = engine.place_order("ETH/USDT", "buy", "0.1", "2990").result(timeout=20)  # reconciled by the scans
        assert isinstance(resting, Accepted) and isinstance(kept, Accepted)
        settle(engine)
        sim.control.add_fault(FaultSpec(kind="rate_limit", target="POST /api/v3/order", count=1, retry_after=90))
        throttled = engine.place_order("ETH/USDT", "buy", "0.1", "2995")
        mark = _hold_opened(sim, engine)
        other = engine.place_order(PAIR, "buy", "0.01", "59900")  # a create of the other pair
        cancel = engine.cancel_order(PAIR, resting.order.request_id).result(timeout=20)
        assert cancel.status is CancelStatus.CANCEL_SENT, cancel
        step(engine, 89_000)  # price polls each second, reconciliation rounds, the minute's account read
        leaked = Counter(requests_since(sim, mark))
        assert not leaked, f"sent during Retry-After: {dict(leaked)}"
        assert _gateway(engine).stats().queued >= 3  # the work waits in the gateway: 2 creates, the cancel, a poll
        assert not throttled.done() and not other.done(), (throttled, other)
        step(engine, 2_000)  # Retry-After is over
        settle(engine)
        assert isinstance(throttled.result(timeout=20), Accepted)
        assert isinstance(other.result(timeout=20), Accepted)
        step(engine, 10_000)  # the next reconciliation round
        settle(engine)
        sent = requests_since(sim, mark)
        # The live orders' reconciliation is the open-orders scan (it lists them: no lookup one by one).
        for path in ["/api/v3/ticker/bookTicker", "/api/v3/account", "/api/v3/openOrders"]:
            assert ("GET", path) in sent, (path, sent)  # polls, the account read and reconciliation go on
        assert sent.count(("POST", "/api/v3/order")) == 2 and sent.count(("DELETE", "/api/v3/order")) == 1, sent
        assert sorted(o["status"] for o in _sim_orders(sim)) == ["CANCELED", "NEW", "NEW", "NEW"]


def test_418_ban_holds_every_request_and_halts_new_orders_until_it_ends(logged_sim: Simulator, tmp_path: Path) -> None:
    # A 418 is an IP ban for Retry-After seconds (2 minutes to 3 days, longer with each one): no request may leave
    # until it ends, on any endpoint, and new orders are refused meanwhile. "Halts new orders until the ban ends"
    # (issue 5): it held until the engine was restarted.
    sim = logged_sim
    with engine_on(sim, tmp_path, _HOLD_CONFIG) as (engine, _):
        resting = engine.place_order(PAIR, "buy", "0.01", LIMIT).result(timeout=20)  # canceled during the ban
        kept = engine.place_order("ETH/USDT", "buy", "0.1", "2990").result(timeout=20)  # reconciled by the scans
        assert isinstance(resting, Accepted) and isinstance(kept, Accepted)
        settle(engine)
        sim.control.add_fault(FaultSpec(kind="ban", target="POST /api/v3/order", count=1, retry_after=120))
        banned = engine.place_order("ETH/USDT", "buy", "0.1", "2995").result(timeout=20)
        assert isinstance(banned, Refusal), banned
        mark = _hold_opened(sim, engine)
        for _ in range(10_000):  # each round is a barrier through the root's inbox (on_critical is told there)
            engine._root.proxy().pair_refs().get(timeout=10)
            if engine.halted:
                break
        assert engine.halted
        refused = engine.place_order(PAIR, "buy", "0.01", "59900").result(timeout=10)
        assert isinstance(refused, Refusal) and refused.reason is RefusalReason.HALTED, refused
        cancel = engine.cancel_order(PAIR, resting.order.request_id).result(timeout=20)
        assert cancel.status is CancelStatus.CANCEL_SENT, cancel
        # The ban's end is the body's "banned until" (server time), about 120 s on.
        step(engine, 110_000)  # price polls each second, reconciliation rounds, the minute's account read
        leaked = Counter(requests_since(sim, mark))
        assert not leaked, f"sent during the ban: {dict(leaked)}"
        assert engine.halted
        assert _gateway(engine).stats().queued >= 2  # the work waits in the gateway: the cancel, a poll
        step(engine, 15_000)
        assert not engine.halted, engine._state.halt_causes()
        settle(engine)
        third = engine.place_order(PAIR, "buy", "0.01", "59900").result(timeout=20)
        assert isinstance(third, Accepted), third
        step(engine, 10_000)  # the next reconciliation round
        settle(engine)
        sent = requests_since(sim, mark)
        # The live orders' reconciliation is the open-orders scan (it lists them: no lookup one by one).
        for path in ["/api/v3/ticker/bookTicker", "/api/v3/account", "/api/v3/openOrders"]:
            assert ("GET", path) in sent, (path, sent)  # polls, the account read and reconciliation go on
        assert sent.count(("POST", "/api/v3/order")) == 1 and sent.count(("DELETE", "/api/v3/order")) == 1, sent
        assert sorted(o["status"] for o in _sim_orders(sim)) == ["CANCELED", "NEW", "NEW"]


@pytest.mark.timeout(60)
def test_settle_moves_a_manual_clock_on_to_a_retry_of_a_failed_cancel(start: Any, sim: Simulator) -> None:
    # The gateway's retry backoff waits on the injected clock: on a manual clock only a move ends it. The
    # barrier waited for an idle gateway in real time, 30 s, and failed.
    engine, events = start(_config(limit_timeout_s="600"))
    outcome = engine.place_order(PAIR, "buy", "0.01", LIMIT).result(timeout=20)
    assert isinstance(outcome, Accepted)
    sim.control.add_fault(FaultSpec(kind="http_error", target="DELETE /api/v3/order", count=1, status=503))
    answer = engine.cancel_order(PAIR, outcome.order.request_id).result(timeout=20)
    assert answer.canceling, answer
    settle(engine)
    [order] = _sim_orders(sim)
    assert order["status"] == "CANCELED"
    [done] = events.wait_for(EventKind.DONE)
    assert done.trade is not None and done.trade.status is TradeStatus.CANCELED
