"""The whole engine against the simulator when things go wrong: the exchange rejects an order, a create's outcome
is unknown (5xx, a timeout after the exchange accepted it), a 429 with Retry-After, a 418 ban, a crashed pair
actor, and shutting down with orders still open.

Time is a manual clock, as in test_engine_sim.py; the shared fixtures and barriers are in _engine_sim_helpers.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.api import Accepted, EventKind, Refusal, RefusalReason
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
    _store,
    settle,
)

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


def test_429_holds_every_order_until_retry_after(start: Any, sim: Simulator) -> None:
    engine, events = start(_config(limit_timeout_s="600"))  # no limit timeout within the 31 s of this test
    sim.control.add_fault(FaultSpec(kind="rate_limit", target="POST /api/v3/order", count=1, retry_after=30))
    first = engine.place_order(PAIR, "buy", "0.01", LIMIT)
    [error] = events.wait_for(EventKind.ERROR)  # the 429 came back; the create waits to be re-sent
    assert "RateLimited" in error.message
    second = engine.place_order("ETH/USDT", "buy", "0.1", "2995")
    for proxy in engine._routing.routes.values():
        proxy.active_requests().get(timeout=10)  # barrier: both intents have been handed to persistence
    _store(engine).flush().get(timeout=10)  # barrier: durable, so both creates have been handed to the gateway
    gateway = _gateway(engine)
    assert gateway.stats().queued >= 2
    assert not first.done() and not second.done(), "nothing may be sent during Retry-After"
    assert _sim_orders(sim) == []
    engine.ticker.advance(31_000)
    gateway.wake()
    assert isinstance(first.result(timeout=20), Accepted)
    assert isinstance(second.result(timeout=20), Accepted)
    assert len(_sim_orders(sim)) == 2


def test_418_ban_halts_new_orders(start: Any, sim: Simulator) -> None:
    engine, _ = start()
    sim.control.add_fault(FaultSpec(kind="ban", target="POST /api/v3/order", count=1, retry_after=120))
    first = engine.place_order(PAIR, "buy", "0.01", LIMIT).result(timeout=20)
    assert isinstance(first, Refusal)
    for _ in range(10_000):  # each round is a barrier through the root's inbox (on_critical is told there)
        engine._root.proxy().pair_refs().get(timeout=10)
        if engine.halted:
            break
    assert engine.halted
    second = engine.place_order("ETH/USDT", "buy", "0.1", "2995").result(timeout=10)
    assert isinstance(second, Refusal) and second.reason is RefusalReason.HALTED
    assert _sim_orders(sim) == []
    # "Halts new orders until the ban ends" (issue 5): it held until the engine was restarted.
    engine.ticker.advance(110_000)  # the ban's end is the body's "banned until" (server time), about 120 s on
    engine._root.proxy().pair_refs().get(timeout=10)  # barrier: what the timers told the root was handled
    assert engine.halted
    engine.ticker.advance(15_000)
    engine._root.proxy().pair_refs().get(timeout=10)
    assert not engine.halted, engine._state.halt_causes()
    third = engine.place_order("ETH/USDT", "buy", "0.1", "2995").result(timeout=20)
    assert isinstance(third, Accepted), third
    assert len(_sim_orders(sim)) == 1


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
