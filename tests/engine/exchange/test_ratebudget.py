"""Rate budget: never beyond limit − margin in any window, never during Retry-After."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.exchange._ratebudget import (
    DEFAULT_LIMITS,
    ENDPOINT_WEIGHTS,
    ORDER_WINDOW_GUARD_MS,
    Admit,
    EndpointKind,
    LimitKind,
    RateBudget,
    RateLimit,
    Wait,
)

WEIGHT = RateLimit(LimitKind.REQUEST_WEIGHT, 60_000, 100)
ORDERS_10S = RateLimit(LimitKind.ORDERS, 10_000, 10)
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a day/minute/10 s boundary


def test_exchange_info_limits_parse() -> None:
    limits = RateBudget.limits_from_exchange_info(
        [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000},
            {"rateLimitType": "SOMETHING_NEW", "interval": "MINUTE", "intervalNum": 1, "limit": 1},
        ]
    )
    assert limits == DEFAULT_LIMITS


def test_window_fills_then_reopens_at_the_boundary() -> None:
    budget = RateBudget([WEIGHT], margin=0.1)
    admitted = 0
    while isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 5), Admit):
        admitted += 4
    assert admitted == 88  # 22 × 4 ≤ 90 = 100 − 10 %
    wait = budget.reserve(EndpointKind.FETCH_ORDER, T0 + 10)
    assert isinstance(wait, Wait)
    assert wait.until_ms == T0 + 60_000
    assert "REQUEST_WEIGHT/60s" in wait.reason
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 60_000), Admit)


def test_successful_order_calls_are_refunded_failed_ones_charged() -> None:
    budget = RateBudget([WEIGHT], margin=0)
    ok = budget.reserve(EndpointKind.CREATE_ORDER, T0)
    assert isinstance(ok, Admit)
    budget.release(ok, success=True)
    assert budget.used(WEIGHT, T0) == 0
    failed = budget.reserve(EndpointKind.CANCEL_ORDER, T0)
    assert isinstance(failed, Admit)
    budget.release(failed, success=False)
    assert budget.used(WEIGHT, T0) == 1
    fetch = budget.reserve(EndpointKind.FETCH_ORDER, T0)
    assert isinstance(fetch, Admit)
    budget.release(fetch, success=True)
    assert budget.used(WEIGHT, T0) == 5


def test_order_count_limit_only_counts_creates() -> None:
    budget = RateBudget([ORDERS_10S], margin=0)
    for _ in range(10):
        assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 1), Admit)
    assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 2), Wait)
    assert isinstance(budget.reserve(EndpointKind.CANCEL_ORDER, T0 + 2), Admit)
    # The next window, but the last one full: a create this early may reach the server before its boundary.
    just_turned = budget.reserve(EndpointKind.CREATE_ORDER, T0 + 10_000)
    assert isinstance(just_turned, Wait) and just_turned.until_ms == T0 + 10_000 + ORDER_WINDOW_GUARD_MS
    assert isinstance(budget.reserve(EndpointKind.CANCEL_ORDER, T0 + 10_000), Admit)  # not creates: no count
    assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 10_000 + ORDER_WINDOW_GUARD_MS), Admit)


def test_a_create_just_past_a_boundary_goes_when_the_last_window_had_room() -> None:
    budget = RateBudget([ORDERS_10S], margin=0)
    for _ in range(9):
        assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 1), Admit)
    assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 10_001), Admit)  # 9 + 1 fits the last one too


def test_headers_raise_the_count_but_never_lower_it() -> None:
    budget = RateBudget([WEIGHT, ORDERS_10S], margin=0.1)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "85", "x-mbx-order-count-10s": "9"}, T0 + 100)
    assert budget.used(WEIGHT, T0 + 100) == 85
    assert budget.used(ORDERS_10S, T0 + 100) == 9
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 200), Admit)  # 85 + 4 ≤ 90
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 200), Wait)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "3"}, T0 + 300)
    assert budget.used(WEIGHT, T0 + 300) == 89


def test_header_from_the_previous_window_is_not_carried_over() -> None:
    budget = RateBudget([WEIGHT], margin=0.1)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "90"}, T0 + 60_010, sent_ms=T0 + 59_990)
    assert budget.used(WEIGHT, T0 + 60_010) == 0


def test_429_blocks_everything_until_the_latest_retry_after() -> None:
    budget = RateBudget()
    budget.on_throttled(http_status=429, retry_after_s=30, now_ms=T0)
    budget.on_throttled(http_status=429, retry_after_s=5, now_ms=T0 + 1000)  # earlier end: ignored
    for endpoint in (EndpointKind.CANCEL_ORDER, EndpointKind.FETCH_ORDER, EndpointKind.CREATE_ORDER):
        wait = budget.reserve(endpoint, T0 + 29_999)
        assert isinstance(wait, Wait)
        assert wait.until_ms == T0 + 30_000
    assert isinstance(budget.reserve(EndpointKind.CANCEL_ORDER, T0 + 30_000), Admit)
    assert not budget.new_orders_halted(T0)


def test_429_without_header_waits_for_the_minute_boundary() -> None:
    budget = RateBudget()
    budget.on_throttled(http_status=429, retry_after_s=None, now_ms=T0 + 12_345)
    assert budget.blocked_until_ms() == T0 + 60_000


def test_418_halts_new_orders_until_the_ban_ends() -> None:
    budget = RateBudget()
    budget.on_throttled(http_status=418, retry_after_s=None, now_ms=T0, banned_until_ms=T0 + 600_000)
    assert budget.new_orders_halted(T0 + 599_999)
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 599_999), Wait)
    assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 600_000), Admit)
    assert not budget.new_orders_halted(T0 + 600_000)


_endpoints = st.sampled_from(list(EndpointKind))
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(0, 600), _endpoints),
        st.tuples(st.just("release"), st.integers(0, 0), st.booleans()),
        st.tuples(st.just("observe"), st.integers(0, 3_000), st.integers(0, 120)),
        st.tuples(st.just("throttle"), st.integers(0, 3_000), st.sampled_from([(429, 3.0), (418, 20.0), (429, None)])),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(_ops, st.sampled_from([0.0, 0.05, 0.1, 0.5]))
def test_never_admits_beyond_limit_minus_margin_nor_during_retry_after(ops: list[tuple], margin: float) -> None:
    budget = RateBudget([WEIGHT, ORDERS_10S], margin=margin)
    eff_weight = budget.effective_limit(WEIGHT)
    eff_orders = budget.effective_limit(ORDERS_10S)
    now = T0
    blocked_until = 0
    charged: dict[int, int] = {}  # window start → weight charged and not refunded (model, not the budget)
    orders: dict[int, int] = {}
    server: dict[int, int] = {}  # window start → highest server count seen
    last_admit: Admit | None = None
    for op, dt, arg in ops:
        now += dt
        w = WEIGHT.window_start(now)
        if op == "reserve":
            result = budget.reserve(arg, now)
            if isinstance(result, Admit):
                assert now >= blocked_until
                charged[w] = charged.get(w, 0) + result.weight
                assert charged[w] <= eff_weight
                assert server.get(w, 0) + result.weight <= eff_weight
                if arg is EndpointKind.CREATE_ORDER:
                    o = ORDERS_10S.window_start(now)
                    orders[o] = orders.get(o, 0) + 1
                    assert orders[o] <= eff_orders
                last_admit = result
            else:
                assert result.until_ms > now
        elif op == "release" and last_admit is not None:
            budget.release(last_admit, success=arg)
            if arg and last_admit.endpoint.is_order:
                start = WEIGHT.window_start(last_admit.admitted_ms)
                charged[start] = charged.get(start, 0) - last_admit.weight
            last_admit = None
        elif op == "observe":
            budget.observe({"X-MBX-USED-WEIGHT-1M": str(arg)}, now)
            server[w] = max(server.get(w, 0), arg)
            charged[w] = max(charged.get(w, 0), arg)
        elif op == "throttle":
            status, retry_after = arg
            budget.on_throttled(http_status=status, retry_after_s=retry_after, now_ms=now)
            end = now - now % 60000 + 60000 if retry_after is None else now + int(retry_after * 1000)
            blocked_until = max(blocked_until, end)


@settings(max_examples=100, deadline=None)
@given(st.lists(_endpoints, min_size=1, max_size=200), st.sampled_from([0.0, 0.1, 0.25]))
def test_a_burst_within_one_window_stops_exactly_at_limit_minus_margin(
    endpoints: list[EndpointKind], margin: float
) -> None:
    budget = RateBudget([WEIGHT, ORDERS_10S], margin=margin)
    weight = 0
    creates = 0
    for i, endpoint in enumerate(endpoints):
        result = budget.reserve(endpoint, T0 + i)
        if isinstance(result, Admit):
            weight += result.weight
            creates += endpoint is EndpointKind.CREATE_ORDER
        elif endpoint is not EndpointKind.CREATE_ORDER:
            # refused only because this request's weight would cross the line
            assert weight + ENDPOINT_WEIGHTS[endpoint] > budget.effective_limit(WEIGHT)
    assert weight <= budget.effective_limit(WEIGHT)
    assert creates <= budget.effective_limit(ORDERS_10S)
    # filling up with weight-1 calls reaches the line exactly, never beyond
    while isinstance(budget.reserve(EndpointKind.TIME, T0 + 500), Admit):
        weight += 1
    assert weight == budget.effective_limit(WEIGHT)
