"""The gateway against the simulator over loopback, with the real ccxt async client."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

from actors.gateway import GatewayActor, GatewayHandle, GatewaySettings
from engine.clock import ManualClock, SystemClock
from engine.domain import OrderStatus, Priority
from engine.exchange import OutcomeUnknown, RateLimited
from engine.exchange._ratebudget import RateBudget
from engine.exchange._retry import BackoffPolicy
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.venue import parse_order
from sim import FaultSpec, SimConfig, Simulator

FAST_RETRY = BackoffPolicy(base_s=0.01, cap_s=0.05, max_attempts=3)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=7, start_prices={"BTCUSDT": Decimal(60000)})) as simulator:
        yield simulator


def _start(sim: Simulator, **kw: object) -> tuple[GatewayActor, GatewayHandle]:
    account = sim.accounts[0]
    settings = GatewaySettings(
        api_key=account.api_key,
        secret=account.secret,
        rest_base=sim.urls.rest,
        timeout_ms=int(kw.pop("timeout_ms", 5000)),  # type: ignore[call-overload]
        max_in_flight=int(kw.pop("max_in_flight", 32)),  # type: ignore[call-overload]
    )
    clock = kw.pop("clock", SystemClock())
    ref = GatewayActor.start(settings, clock=clock, backoff=FAST_RETRY, **kw)  # type: ignore[arg-type]
    handle: GatewayHandle = ref.proxy().handle().get(timeout=10)
    return ref, handle


def _limit(cid: str, price: str = "30000", qty: str = "0.001", side: str = "BUY") -> GatewayRequest:
    params = {
        "symbol": "BTCUSDT",
        "side": side,
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": qty,
        "price": price,
        "newClientOrderId": cid,
        "newOrderRespType": "FULL",
    }
    return GatewayRequest(Op.CREATE_ORDER, params, Priority.ENTRY, key=cid, pair="BTC/USDT")


def _call(handle: GatewayHandle, request: GatewayRequest) -> GatewayResult:
    return handle.call(request).result(timeout=20)


def test_create_fetch_cancel_round_trip(sim: Simulator) -> None:
    ref, gw = _start(sim)
    try:
        created = _call(gw, _limit("bx-test-1"))
        assert created.ok, created.error
        snap = parse_order(created.data)
        assert (snap.status, snap.client_order_id, snap.executed_qty) == (OrderStatus.OPEN, "bx-test-1", 0)

        fetched = _call(gw, GatewayRequest(Op.FETCH_ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "bx-test-1"}))
        assert parse_order(fetched.data).order_id == snap.order_id

        canceled = _call(
            gw,
            GatewayRequest(Op.CANCEL_ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "bx-test-1"}, Priority.CANCEL),
        )
        assert parse_order(canceled.data, client_order_id_key="origClientOrderId").status is OrderStatus.CANCELED
        stats = gw.stats()
        assert stats.sent == 3 and stats.failed == 0 and stats.queued == 0
    finally:
        ref.stop(timeout=20)


def test_create_is_never_retried_on_unknown_outcome(sim: Simulator) -> None:
    ref, gw = _start(sim)
    try:
        sim.control.add_fault(
            FaultSpec(kind="http_error", target="POST /api/v3/order", count=1, status=503, code=-1006, execute=True)
        )
        result = _call(gw, _limit("bx-unknown-1"))
        assert isinstance(result.error, OutcomeUnknown)
        assert result.attempts == 1
        # The order does exist: the outcome must be resolved by looking it up, never by resending.
        found = _call(gw, GatewayRequest(Op.FETCH_ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "bx-unknown-1"}))
        assert found.ok and parse_order(found.data).status is OrderStatus.OPEN
        orders = [o for o in sim.control.ledger()["orders"] if o["clientOrderId"] == "bx-unknown-1"]
        assert len(orders) == 1
    finally:
        ref.stop(timeout=20)


@pytest.mark.parametrize(("status", "code"), [(503, -1099), (502, -1034)])
def test_a_5xx_with_a_code_binance_lists_nowhere_is_an_unknown_outcome_for_a_create(
    sim: Simulator, status: int, code: int
) -> None:
    # ccxt's error text carries the JSON body only: without the status the hook saw, an unlisted code was taken
    # for a 4xx refusal ("rejected for sure"), though Binance says a 5xx leaves the execution status unknown.
    ref, gw = _start(sim)
    try:
        sim.control.add_fault(
            FaultSpec(kind="http_error", target="POST /api/v3/order", count=1, status=status, code=code,
                      msg="Internal error; unable to process your request.", execute=True)
        )  # fmt: skip
        result = _call(gw, _limit(f"bx-5xx-{-code}"))
        assert isinstance(result.error, OutcomeUnknown), result.error
        assert result.error.http_status == status and result.attempts == 1
    finally:
        ref.stop(timeout=20)


def test_idempotent_read_is_retried(sim: Simulator) -> None:
    ref, gw = _start(sim)
    try:
        _call(gw, _limit("bx-retry-1"))
        sim.control.add_fault(
            FaultSpec(kind="http_error", target="GET /api/v3/order", count=1, status=503, code=-1001, execute=False)
        )
        result = _call(gw, GatewayRequest(Op.FETCH_ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "bx-retry-1"}))
        assert result.ok and result.attempts == 2
    finally:
        ref.stop(timeout=20)


def test_timeout_after_the_order_was_accepted(sim: Simulator) -> None:
    ref, gw = _start(sim, timeout_ms=400)
    try:
        sim.control.add_fault(FaultSpec(kind="withhold", target="POST /api/v3/order", count=1, hold_s=2.0))
        result = _call(gw, _limit("bx-withheld-1"))
        assert isinstance(result.error, OutcomeUnknown)
        found = _call(gw, GatewayRequest(Op.FETCH_ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "bx-withheld-1"}))
        assert found.ok
    finally:
        ref.stop(timeout=20)


def test_a_hung_request_does_not_stall_others(sim: Simulator) -> None:
    ref, gw = _start(sim, timeout_ms=3000)
    try:
        _call(gw, _limit("bx-hang-0"))
        sim.control.add_fault(FaultSpec(kind="withhold", target="GET /api/v3/order", count=1, hold_s=2.5))
        hung = gw.call(GatewayRequest(Op.FETCH_ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "bx-hang-0"}))
        quick = [gw.call(_limit(f"bx-hang-{i}")) for i in range(1, 6)]
        done, _ = concurrent.futures.wait(quick, timeout=2)
        assert len(done) == 5 and all(f.result().ok for f in done)
        assert not hung.done()
        assert hung.result(timeout=10) is not None
    finally:
        ref.stop(timeout=20)


def test_cancel_overtakes_a_backlog(sim: Simulator) -> None:
    ref, gw = _start(sim, max_in_flight=1)
    try:
        _call(gw, _limit("bx-backlog-target"))
        order: list[str] = []
        lock = threading.Lock()

        def record(result: GatewayResult) -> None:
            with lock:
                order.append(result.request.key)

        sim.control.add_fault(FaultSpec(kind="latency", target="POST /api/v3/order", latency_ms=30, count=30))
        futures = []
        for i in range(30):
            req = _limit(f"bx-backlog-{i}")
            futures.append(gw.call(GatewayRequest(req.op, req.params, req.priority, req.key, req.pair, record)))
        cancel = GatewayRequest(
            Op.CANCEL_ORDER,
            {"symbol": "BTCUSDT", "origClientOrderId": "bx-backlog-target"},
            Priority.CANCEL,
            key="cancel",
            reply_to=record,
        )
        futures.append(gw.call(cancel))
        concurrent.futures.wait(futures, timeout=30)
        # At most the one create already in flight (plus one taken before the cancel was queued) goes first.
        assert order.index("cancel") <= 2, order
    finally:
        ref.stop(timeout=20)


def test_429_blocks_every_request_until_retry_after(sim: Simulator) -> None:
    clock = ManualClock(SystemClock().now_ms())
    budget = RateBudget()
    ref, gw = _start(sim, clock=clock, budget=budget)
    try:
        sim.control.add_fault(FaultSpec(kind="rate_limit", target="POST /api/v3/order", count=1, retry_after=7))
        first = _call(gw, _limit("bx-429-0"))  # a create is never retried, so its 429 comes straight back
        assert isinstance(first.error, RateLimited)
        offset = gw.stats().clock_offset_ms  # the budget runs on server time: local + offset
        blocked_until = budget.blocked_until_ms()
        assert blocked_until >= clock.now_ms() + offset + 7000
        assert budget.creates_held_until_ms() >= blocked_until
        pending = [gw.call(_limit(f"bx-429-{i}")) for i in range(1, 4)]
        gw.wake()
        done, _ = concurrent.futures.wait(pending, timeout=1.0)
        assert not done, "nothing may be sent during Retry-After"
        clock.set(blocked_until - offset)
        gw.wake()
        results = [f.result(timeout=10) for f in pending]
        assert all(r.ok and r.sent_ms + offset >= blocked_until for r in results)
    finally:
        ref.stop(timeout=20)
