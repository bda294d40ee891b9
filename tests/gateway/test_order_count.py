"""The rate budget's order count: the server's latest count stands (fills lower it), never below what the server
can be counting; and a 429 -1015 holds creates only."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.exchange import parse_order_window_ms
from engine.exchange._ratebudget import (
    ORDER_WINDOW_GUARD_MS,
    Admit,
    EndpointKind,
    LimitKind,
    RateBudget,
    RateLimit,
    Wait,
)

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
ORDERS_10S = RateLimit(LimitKind.ORDERS, 10_000, 10)
WEIGHT = RateLimit(LimitKind.REQUEST_WEIGHT, 60_000, 100)
HEADER = "X-MBX-ORDER-COUNT-10S"


def test_a_lower_count_from_a_later_response_lowers_the_window() -> None:
    budget = RateBudget([ORDERS_10S], margin=0)
    admits = []
    for _ in range(10):
        admit = budget.reserve(EndpointKind.CREATE_ORDER, T0)
        assert isinstance(admit, Admit)
        admits.append(admit)
    assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0), Wait)
    for admit in admits:  # each sent after the previous one's answer, each filled at once
        mark = budget.order_mark(T0, create=True)
        budget.observe({HEADER: "0"}, T0 + 5, mark=mark)
        budget.release(admit, success=True)
    assert budget.used(ORDERS_10S, T0 + 5) == 0
    assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 5), Admit)


def test_creates_in_flight_when_a_count_left_stay_counted() -> None:
    budget = RateBudget([ORDERS_10S], margin=0)
    admits = [budget.reserve(EndpointKind.CREATE_ORDER, T0) for _ in range(10)]
    marks = [budget.order_mark(T0, create=True) for _ in admits]  # all ten sent before any answer
    budget.observe({HEADER: "1"}, T0 + 5, mark=marks[0])  # the first one's answer: the other nine may follow
    assert budget.used(ORDERS_10S, T0 + 5) == 10
    assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 5), Wait)
    budget.observe({HEADER: "3"}, T0 + 5)  # a count of unknown provenance: every create of the window on top
    assert budget.used(ORDERS_10S, T0 + 5) == 13


def test_too_many_orders_holds_creates_but_not_cancels_nor_lookups() -> None:
    budget = RateBudget([WEIGHT, ORDERS_10S], margin=0)
    budget.on_throttled(http_status=429, retry_after_s=3600, now_ms=T0, orders_only=True)
    held = budget.reserve(EndpointKind.CREATE_ORDER, T0 + 1)
    assert isinstance(held, Wait) and held.orders_only and held.until_ms == T0 + 3_600_000
    assert isinstance(budget.reserve(EndpointKind.CANCEL_ORDER, T0 + 1), Admit)
    assert isinstance(budget.reserve(EndpointKind.FETCH_ORDER, T0 + 1), Admit)
    assert budget.blocked_until_ms() == 0 and not budget.new_orders_halted(T0 + 1)
    assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 3_600_000), Admit)


def test_a_minus_1015_without_retry_after_holds_creates_to_the_end_of_the_window_its_message_names() -> None:
    # Binance sends this 429 without Retry-After; the minute's end was too long for the 10 s window and far too
    # short for a daily breach (each create went out again every minute, and failed for good after three).
    day_end = T0 - T0 % 86_400_000 + 86_400_000
    cases = [
        ("Too many new orders; current limit is 50 orders per 10 SECOND.", T0 + 7_000, T0 + 10_000),
        ("Too many new orders; current limit is 160000 orders per DAY.", T0 + 7_000, day_end),
    ]
    for message, now, until in cases:
        budget = RateBudget([WEIGHT, ORDERS_10S], margin=0)
        window = parse_order_window_ms(message)
        budget.on_throttled(http_status=429, retry_after_s=None, now_ms=now, orders_only=True, window_ms=window)
        # a guard past the boundary: the server's clock may be a little behind our estimate of it
        assert budget.creates_held_until_ms() == until + ORDER_WINDOW_GUARD_MS, message
        assert budget.blocked_until_ms() == 0


def test_a_daily_breach_counted_in_the_old_day_holds_for_a_moment_not_another_day() -> None:
    # A create left at 23:59:59.990 (or at 00:00:00.010 by our estimate, the server's clock 30 ms behind): the server
    # counted it in the old day; its answer was read after 00:00 UTC. The window was taken from the reading: every
    # create of the new day was refused and new orders halted for 24 h.
    midnight = T0 - T0 % 86_400_000 + 86_400_000
    for sent in (midnight - 10, midnight + 10):
        budget = RateBudget([WEIGHT, ORDERS_10S], margin=0)
        budget.on_throttled(http_status=429, retry_after_s=None, now_ms=midnight + 20, orders_only=True,
                            window_ms=86_400_000, sent_ms=sent)  # fmt: skip
        assert budget.creates_held_until_ms() == midnight + 20 + ORDER_WINDOW_GUARD_MS, sent


def test_a_daily_breach_sent_seconds_into_the_new_day_by_our_estimate_holds_for_a_moment() -> None:
    # Our estimate of the server's clock a second ahead (a round trip's midpoint error, a small forward step the
    # offset median has not taken yet): the create left at 00:00:01 by our estimate, 23:59:59.9 by the server's.
    # Held to the next midnight, every create was refused and new orders halted for 24 h (time review).
    midnight = T0 - T0 % 86_400_000 + 86_400_000
    for sent in (midnight + 1_000, midnight + 59_000):
        budget = RateBudget([WEIGHT, ORDERS_10S], margin=0)
        budget.on_throttled(http_status=429, retry_after_s=None, now_ms=sent + 20, orders_only=True,
                            window_ms=86_400_000, sent_ms=sent)  # fmt: skip
        assert budget.creates_held_until_ms() == sent + 20 + ORDER_WINDOW_GUARD_MS, sent
    # Later in the day it is a breach of this day: held until the next midnight.
    budget = RateBudget([WEIGHT, ORDERS_10S], margin=0)
    sent = midnight + 61_000
    budget.on_throttled(http_status=429, retry_after_s=None, now_ms=sent + 20, orders_only=True,
                        window_ms=86_400_000, sent_ms=sent)  # fmt: skip
    assert budget.creates_held_until_ms() == midnight + 86_400_000 + ORDER_WINDOW_GUARD_MS
    # The 10 s window has no such slack: a breach 1 s into it is that window's.
    budget = RateBudget([WEIGHT, ORDERS_10S], margin=0)
    ten = midnight + 10_000
    budget.on_throttled(http_status=429, retry_after_s=None, now_ms=ten + 1_020, orders_only=True,
                        window_ms=10_000, sent_ms=ten + 1_000)  # fmt: skip
    assert budget.creates_held_until_ms() == ten + 10_000 + ORDER_WINDOW_GUARD_MS


def test_the_order_window_is_read_from_the_message() -> None:
    assert parse_order_window_ms("current limit is 50 orders per 10 SECOND.") == 10_000
    assert parse_order_window_ms("current limit is 160000 orders per DAY.") == 86_400_000
    assert parse_order_window_ms("current limit is 7 orders per 1 MINUTE.") == 60_000
    assert parse_order_window_ms("current limit is 7 orders per 2 HOUR.") == 7_200_000
    for text in (None, "", "Too much request weight used; current limit is 6000 per 1 MINUTE.", "per 0 SECOND"):
        assert parse_order_window_ms(text) is None, text


def test_a_weight_block_or_a_ban_is_not_orders_only() -> None:
    budget = RateBudget([WEIGHT, ORDERS_10S], margin=0)
    budget.on_throttled(http_status=418, retry_after_s=120, now_ms=T0, orders_only=True)  # a ban stays a ban
    for endpoint in (EndpointKind.CREATE_ORDER, EndpointKind.CANCEL_ORDER):
        wait = budget.reserve(endpoint, T0 + 1)
        assert isinstance(wait, Wait) and not wait.orders_only
    full = RateBudget([WEIGHT, ORDERS_10S], margin=0)
    full.observe({"X-MBX-USED-WEIGHT-1M": "100", HEADER: "10"}, T0)
    wait = full.reserve(EndpointKind.CREATE_ORDER, T0)
    assert isinstance(wait, Wait) and not wait.orders_only  # the weight is full too: nothing goes past it


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.booleans()),  # a create; True: it fills at once
        st.tuples(st.just("fill"), st.just(0)),  # a resting order fills
        st.tuples(st.just("answer"), st.integers(0, 50)),  # one in-flight create's answer comes back
    ),
    max_size=150,
)


@settings(max_examples=200, deadline=None)
@given(_ops)
def test_the_order_count_never_falls_below_what_the_server_counts(ops: list[tuple[str, object]]) -> None:
    budget = RateBudget([ORDERS_10S], margin=0)
    allowed = budget.effective_limit(ORDERS_10S)
    now = T0 + 1_000  # one window: the server processes each create as it is sent
    true_count = resting = 0
    in_flight: list[tuple[Admit, int, tuple[int, ...]]] = []
    for op, arg in ops:
        if op == "send":
            admit = budget.reserve(EndpointKind.CREATE_ORDER, now)
            if isinstance(admit, Wait):
                assert admit.orders_only
                continue
            mark = budget.order_mark(now, create=True)
            true_count += 1
            if arg:  # filled at once: the count its answer carries has it already out again
                true_count -= 1
            else:
                resting += 1
            in_flight.append((admit, true_count, mark))
        elif op == "fill" and resting:
            resting -= 1
            true_count -= 1
        elif op == "answer" and in_flight:
            admit, count, mark = in_flight.pop(int(str(arg)) % len(in_flight))  # answers arrive in any order
            budget.observe({HEADER: str(count)}, now, mark=mark)
            budget.release(admit, success=True)
        assert budget.used(ORDERS_10S, now) >= true_count
        assert true_count <= allowed
    if not in_flight:  # all answered: a new response's count is the whole story
        budget.observe({HEADER: str(true_count)}, now, mark=budget.order_mark(now))
        assert budget.used(ORDERS_10S, now) == true_count


def test_a_create_admitted_at_a_windows_end_and_sent_in_the_next_is_counted_in_the_next() -> None:
    # The server counts a create in the window it arrives in: admitted at 9.999 s (its commit, ccxt's
    # preparation) and sent at 10.001 s, it was charged to the old window only, and the new one ran one low.
    budget = RateBudget([ORDERS_10S], margin=0)
    late = budget.reserve(EndpointKind.CREATE_ORDER, T0 + 9_999)
    assert isinstance(late, Admit)
    late = budget.sent(late, T0 + 10_001)
    assert budget.used(ORDERS_10S, T0 + 10_001) == 1
    for _ in range(9):
        assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 10_002), Admit)
    assert isinstance(budget.reserve(EndpointKind.CREATE_ORDER, T0 + 10_002), Wait)  # 10 of 10 with it
    # Its answer is counted in the window it was sent in: a count the server sends back later includes it (1),
    # and the nine creates not answered yet come on top.
    budget.release(late, success=True)
    budget.observe({HEADER: "1"}, T0 + 10_003, mark=budget.order_mark(T0 + 10_003))
    assert budget.used(ORDERS_10S, T0 + 10_003) == 10


def test_a_create_sent_in_the_window_it_was_admitted_in_is_charged_once() -> None:
    budget = RateBudget([ORDERS_10S, WEIGHT], margin=0)
    admit = budget.reserve(EndpointKind.CREATE_ORDER, T0 + 1)
    assert isinstance(admit, Admit)
    assert budget.sent(admit, T0 + 9_000) is admit
    assert budget.used(ORDERS_10S, T0 + 9_000) == 1
    lookup = budget.reserve(EndpointKind.FETCH_ORDER, T0 + 9_000)
    assert isinstance(lookup, Admit) and budget.sent(lookup, T0 + 70_000) is lookup  # only creates are moved
