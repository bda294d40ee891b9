"""Rate budget bookkeeping under late responses, bans and holds (found by mutation testing: the property test checks
upper bounds only)."""

from __future__ import annotations

from engine.exchange._ratebudget import Admit, EndpointKind, LimitKind, RateBudget, RateLimit, Wait
from tests.engine.exchange.test_ratebudget import ORDERS_10S, T0, WEIGHT


def test_limit_minus_margin_is_rounded_down() -> None:  # kills R1
    assert RateBudget([RateLimit(LimitKind.ORDERS, 10_000, 50)], margin=0.05).effective_limit(
        RateLimit(LimitKind.ORDERS, 10_000, 50)) == 47  # fmt: skip


def test_a_new_minute_starts_from_zero_whatever_the_last_one_reported() -> None:  # kills R5
    budget = RateBudget([WEIGHT], margin=0.1)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "85"}, T0 + 100)
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 60_000), Admit)
    assert budget.used(WEIGHT, T0 + 60_000) == 4


def test_an_older_lower_weight_header_arriving_late_does_not_lower_the_count() -> None:  # kills R9
    budget = RateBudget([WEIGHT], margin=0.1)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "85"}, T0 + 100)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "3"}, T0 + 200)  # a response to an earlier request, arriving late
    assert budget.used(WEIGHT, T0 + 200) == 85
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 300), Admit)
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 300), Wait)


def test_a_straddling_response_does_not_wipe_the_new_windows_charges() -> None:  # kills R10
    budget = RateBudget([WEIGHT], margin=0.1)
    for _ in range(21):
        assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 60_005), Admit)  # 84 of 90
    budget.observe({"X-MBX-USED-WEIGHT-1M": "7"}, T0 + 60_010, sent_ms=T0 + 59_990)
    assert budget.used(WEIGHT, T0 + 60_010) == 84
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 60_020), Admit)
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 60_020), Wait)


def test_creates_the_server_already_counted_are_not_counted_twice() -> None:  # kills R4, R25
    budget = RateBudget([ORDERS_10S], margin=0)
    for _ in range(5):
        admit = budget.reserve(EndpointKind.CREATE_ORDER, T0 + 1)
        assert isinstance(admit, Admit)
        budget.release(admit, success=True)
    mark = budget.order_mark(T0 + 2)  # a lookup leaves after the five creates were answered
    budget.observe({"X-MBX-ORDER-COUNT-10S": "5"}, T0 + 3, sent_ms=T0 + 2, mark=mark)
    assert budget.used(ORDERS_10S, T0 + 3) == 5
    for _ in range(5):
        assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 4), Admit)


def test_418_without_headers_waits_two_minutes_and_a_ban_end_outlasts_retry_after() -> None:  # kills R12, R14
    budget = RateBudget()
    budget.on_throttled(http_status=418, retry_after_s=None, now_ms=T0)
    assert budget.blocked_until_ms() == T0 + 120_000
    budget = RateBudget()
    budget.on_throttled(http_status=418, retry_after_s=120, now_ms=T0, banned_until_ms=T0 + 600_000)
    assert budget.blocked_until_ms() == T0 + 600_000
    assert budget.new_orders_halted(T0 + 599_999)


def test_a_418_blocks_everything_even_when_it_answered_a_create() -> None:  # kills R11
    budget = RateBudget()
    budget.on_throttled(http_status=418, retry_after_s=60, now_ms=T0, orders_only=True)
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 1), Wait)


def test_a_full_weight_window_is_not_reported_as_an_order_only_hold() -> None:  # kills R15
    budget = RateBudget([WEIGHT], margin=0.1)
    while isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 5), Admit):
        pass
    wait = budget.reserve(EndpointKind.FETCH_ORDER, T0 + 6)
    assert isinstance(wait, Wait) and not wait.orders_only


def test_later_shorter_throttles_never_shorten_a_halt_or_a_create_hold() -> None:  # kills R22, R23
    budget = RateBudget()
    budget.on_throttled(http_status=418, retry_after_s=None, now_ms=T0, banned_until_ms=T0 + 600_000)
    budget.on_throttled(http_status=418, retry_after_s=10, now_ms=T0 + 1_000)
    assert budget.new_orders_halted(T0 + 500_000)
    budget = RateBudget()
    budget.on_throttled(http_status=429, retry_after_s=60, now_ms=T0, orders_only=True)
    budget.on_throttled(http_status=429, retry_after_s=1, now_ms=T0 + 1_000, orders_only=True)
    assert budget.creates_held_until_ms() == T0 + 60_000


def test_a_1015_hold_stops_creates_at_admission_but_not_lookups() -> None:  # kills R28
    budget = RateBudget()
    budget.on_throttled(http_status=429, retry_after_s=30, now_ms=T0, orders_only=True)
    wait = budget.reserve(EndpointKind.CREATE_ORDER, T0 + 1)
    assert isinstance(wait, Wait) and wait.orders_only and wait.until_ms == T0 + 30_000
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 1), Admit)
