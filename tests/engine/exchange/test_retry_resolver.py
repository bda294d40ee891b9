"""Retry policy, unknown-outcome resolver (Nautilus #4215, #4411), clock offset, client order ids."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain import ClientOrderId, OrderRole
from engine.exchange._client_ids import (
    client_order_id,
    is_engine_id,
    key_digest,
    parse_client_order_id,
)
from engine.exchange._errors import (
    ClockSkew,
    InsufficientBalance,
    OutcomeUnknown,
    RateLimited,
    RetryLater,
    StopTrading,
)
from engine.exchange._resolver import LookUp, Resolution, UnknownOutcomeResolver
from engine.exchange._retry import BackoffPolicy, ClockOffsetEstimator, is_idempotent, should_retry

CID = ClientOrderId("bx-aaaaaaaaaaaaaaaaaaaaaaaaaa-p")


# ---- retry policy -------------------------------------------------------------------------------------


def test_create_is_never_retried() -> None:
    rng = random.Random(1)
    for error in (OutcomeUnknown("x"), RetryLater("x"), RateLimited("x", retry_after_s=1)):
        assert should_retry("create_order", error, 1, rng=rng) is None


@pytest.mark.parametrize(
    "operation",
    ["cancel_order", "fetch_order", "fetch_open_orders", "fetch_my_trades", "fetch_exchange_info",
     "fetch_book_ticker", "fetch_ticker_price", "fetch_api_restrictions", "fetch_anything_new"],
)  # fmt: skip
def test_reads_and_cancels_are_retried(operation: str) -> None:
    assert is_idempotent(operation)
    assert should_retry(operation, RetryLater("x"), 1, rng=random.Random(0)) is not None


def test_rejections_and_stop_trading_are_not_retried() -> None:
    rng = random.Random(1)
    assert should_retry("fetch_order", InsufficientBalance("x"), 1, rng=rng) is None
    assert should_retry("cancel_order", StopTrading("x"), 1, rng=rng) is None


def test_retry_after_is_a_floor_and_attempts_are_bounded() -> None:
    rng = random.Random(7)
    policy = BackoffPolicy(base_s=0.1, cap_s=1, max_attempts=3)
    delay = should_retry("cancel_order", RateLimited("x", retry_after_s=30), 1, rng=rng, policy=policy)
    assert delay == 30
    assert should_retry("cancel_order", OutcomeUnknown("x"), 2, rng=rng, policy=policy) is not None
    assert should_retry("cancel_order", OutcomeUnknown("x"), 3, rng=rng, policy=policy) is None


def test_clock_skew_is_retried_once() -> None:
    rng = random.Random(3)
    assert should_retry("fetch_order", ClockSkew("x"), 1, rng=rng) is not None
    assert should_retry("fetch_order", ClockSkew("x"), 2, rng=rng) is None


@given(st.integers(0, 2**32), st.integers(1, 30), st.sampled_from(["full", "decorrelated"]))
def test_backoff_within_bounds_and_deterministic(seed: int, attempt: int, jitter: str) -> None:
    policy = BackoffPolicy(base_s=0.2, cap_s=5, max_attempts=100, jitter=jitter)  # type: ignore[arg-type]
    a = should_retry("fetch_order", OutcomeUnknown("x"), attempt, rng=random.Random(seed), policy=policy)
    b = should_retry("fetch_order", OutcomeUnknown("x"), attempt, rng=random.Random(seed), policy=policy)
    assert a == b
    assert a is not None
    assert 0 <= a <= 5
    if jitter == "full":  # half the step at least: never a burst of retries next to nothing apart
        assert a >= min(5, 0.2 * 2 ** (attempt - 1)) / 2


# ---- unknown outcome resolver ---------------------------------------------------------------------------


def _drive_not_found(resolver: UnknownOutcomeResolver, now: int) -> tuple[Resolution, int]:
    while resolver.state is Resolution.PENDING:
        due = resolver.next_lookup_ms
        assert due is not None
        now = max(now, due)
        assert isinstance(resolver.poll(now), LookUp)
        resolver.on_lookup_not_found(now)
    return resolver.state, now


def test_not_found_inside_grace_period_is_not_a_rejection_4411() -> None:
    resolver = UnknownOutcomeResolver(CID, 0, grace_ms=15_000, interval_ms=2_000)
    assert resolver.poll(1_999) is None
    lookup = resolver.poll(2_000)
    assert lookup == LookUp(CID, 1)
    assert resolver.poll(2_000) is None  # one lookup in flight at a time
    assert resolver.on_lookup_not_found(2_100) is Resolution.PENDING
    assert resolver.next_lookup_ms == 4_100


def test_not_found_after_grace_and_confirmations_means_not_created() -> None:
    resolver = UnknownOutcomeResolver(CID, 0, grace_ms=15_000, interval_ms=2_000, confirmations=2)
    state, now = _drive_not_found(resolver, 0)
    assert state is Resolution.NOT_CREATED
    assert now >= 15_000 + 2_000
    assert resolver.poll(now + 100_000) is None


def test_scheduled_lookup_after_the_ack_causes_no_resend_4215() -> None:
    resolver = UnknownOutcomeResolver(CID, 0, grace_ms=0, interval_ms=1_000, confirmations=1)
    assert resolver.poll(1_000) is not None  # lookup sent …
    assert resolver.on_order_seen(1_200) is Resolution.FOUND  # … the ack arrives first
    assert resolver.on_lookup_not_found(1_500) is Resolution.FOUND  # the stale answer changes nothing
    assert resolver.poll(10_000) is None  # and nothing more is scheduled


def test_failed_lookups_respect_retry_after_and_give_up() -> None:
    resolver = UnknownOutcomeResolver(CID, 0, interval_ms=1_000, max_failures=2)
    assert resolver.poll(1_000) is not None
    assert resolver.on_lookup_failed(RateLimited("x", retry_after_s=30), 1_000) is Resolution.PENDING
    assert resolver.next_lookup_ms == 31_000
    assert resolver.poll(31_000) is not None
    assert resolver.on_lookup_failed(OutcomeUnknown("x"), 31_000) is Resolution.GAVE_UP


def test_seen_after_not_created_flips_to_found() -> None:
    resolver = UnknownOutcomeResolver(CID, 0, grace_ms=0, interval_ms=1, confirmations=1)
    _drive_not_found(resolver, 0)
    assert resolver.on_order_seen(99) is Resolution.FOUND


_events = st.lists(
    st.tuples(st.sampled_from(["poll", "found", "not_found", "failed", "seen"]), st.integers(0, 5_000)),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_events)
def test_resolver_never_concludes_not_created_early_or_after_seen(events: list[tuple[str, int]]) -> None:
    grace = 15_000
    resolver = UnknownOutcomeResolver(CID, 0, grace_ms=grace, interval_ms=1_000, confirmations=2)
    now = 0
    seen = False
    for kind, dt in events:
        now += dt
        before = resolver.state
        if kind == "poll":
            resolver.poll(now)
        elif kind in ("found", "seen"):
            resolver.on_order_seen(now)
            seen = True
        elif kind == "not_found":
            resolver.on_lookup_not_found(now)
        else:
            resolver.on_lookup_failed(OutcomeUnknown("x"), now)
        if resolver.state is Resolution.NOT_CREATED and before is not Resolution.NOT_CREATED:
            assert now >= grace
            assert not seen
        if seen:
            assert resolver.state is Resolution.FOUND
            assert resolver.poll(now) is None


# ---- clock offset ---------------------------------------------------------------------------------------


def test_offset_is_the_median_and_outliers_do_not_move_it() -> None:
    clock = ClockOffsetEstimator(window=5)
    assert clock.needs_resync
    for sent, server, received in [(0, 1_050, 100), (1_000, 2_050, 1_100), (2_000, 9_999, 2_100)]:
        assert clock.add_sample(sent, server, received)
    assert clock.offset_ms == 1_000
    assert clock.server_time_ms(5_000) == 6_000
    assert not clock.needs_resync
    assert clock.within_recv_window(5_000)
    assert not clock.within_recv_window(1_000)


def test_skew_forgets_samples_and_demands_resync() -> None:
    clock = ClockOffsetEstimator()
    clock.add_sample(0, 500, 10)
    clock.mark_skew()
    assert clock.needs_resync
    # Until a sample it can trust, the offset it had stays the best guess: a slow re-sync round trip (likely
    # when network delay caused the -1021) reset a host clock ahead of the server's to no correction at all.
    assert clock.offset_ms == 495
    assert not clock.add_sample(100, 0, 50)  # negative round trip
    assert not clock.add_sample(0, 0, 60_000)  # too slow to trust
    assert clock.needs_resync and clock.offset_ms == 495
    assert clock.add_sample(1_000, 1_210, 1_020)
    assert clock.offset_ms == 200 and not clock.needs_resync


def test_a_clock_step_is_taken_at_the_second_sample_that_shows_it() -> None:
    # Found hands-on: the exchange's clock moved 8 s; the median of the old samples would have kept the old
    # offset for five more checks (each a round of -1021s). One far sample is an outlier; two agreeing, a step.
    clock = ClockOffsetEstimator(window=9)
    for n in range(9):
        clock.add_sample(n * 1_000, n * 1_000 + 20, n * 1_000 + 10)
    assert clock.offset_ms == 15
    clock.add_sample(10_000, 18_020, 10_010)
    assert clock.offset_ms == 15  # alone: an outlier
    clock.add_sample(11_000, 19_030, 11_020)
    assert clock.offset_ms == 8_015  # confirmed: the clock stepped; the old samples are gone
    clock.add_sample(12_000, 12_020, 12_010)
    assert clock.offset_ms == 8_015  # one sample back at the old offset is an outlier now


# ---- client order ids ---------------------------------------------------------------------------------

_BINANCE = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")


@given(st.text(min_size=1, max_size=300), st.sampled_from(["BTC/USDT", "ETH/BTC"]), st.integers(0, 99_999))
def test_client_ids_are_valid_deterministic_and_decodable(key: str, pair: str, fallback: int) -> None:
    cid = client_order_id(key, pair=pair, fallback=fallback)
    assert _BINANCE.match(cid)
    assert cid.startswith("bx-")
    assert cid == client_order_id(key, pair=pair, fallback=fallback)
    assert is_engine_id(cid)
    decoded = parse_client_order_id(cid)
    assert decoded is not None
    assert decoded.fallback == fallback
    assert decoded.role is (OrderRole.PRIMARY if fallback == 0 else OrderRole.FALLBACK)
    assert decoded.matches_key(key, pair)
    assert decoded.digest == key_digest(key, pair)


@given(st.lists(st.text(min_size=1, max_size=40), min_size=2, max_size=200, unique=True))
def test_client_ids_are_injective_over_keys(keys: list[str]) -> None:
    assert len({client_order_id(k, pair="BTC/USDT") for k in keys}) == len(keys)


@given(st.text(min_size=1, max_size=40))
def test_the_same_key_on_two_pairs_gives_two_client_ids(key: str) -> None:
    # Two requests (keys are per pair): one id for both would merge two live orders into one database row.
    assert client_order_id(key, pair="BTC/USDT") != client_order_id(key, pair="ETH/USDT")


@pytest.mark.parametrize(
    "cid", ["x-TKT5PX2F1a2b3c4d5e6f7a8b9c0d1e", "bx-short-p", "bx-AAAAAAAAAAAAAAAAAAAAAAAAAA-p", "", "bx-" + "a" * 26]
)
def test_foreign_ids_are_not_engine_ids(cid: str) -> None:
    assert not is_engine_id(cid)
    assert parse_client_order_id(cid) is None


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        client_order_id("", pair="BTC/USDT")
    with pytest.raises(ValueError, match="empty"):
        client_order_id("k", pair="")
    with pytest.raises(ValueError, match="fallback"):
        client_order_id("k", pair="BTC/USDT", fallback=100_000)


def test_an_id_the_exchange_said_exists_is_never_concluded_not_created() -> None:
    # -2010 "Duplicate order sent.": the id is in use, so the order exists; REST may lag far behind. "Not found"
    # past the grace period gives up (the operator is alerted, reconciliation goes on) instead of "not created",
    # which would re-send it: a duplicate once it fills, and an untracked live order meanwhile.
    resolver = UnknownOutcomeResolver(CID, 0, grace_ms=15_000, interval_ms=2_000, confirmations=2, exists=True)
    state, now = _drive_not_found(resolver, 0)
    assert state is Resolution.GAVE_UP
    assert now >= 15_000 + 2_000
    for later in (now + 60_000, now + 120_000):  # reconciliation's lookups: still not "not created"
        assert resolver.on_lookup_not_found(later) is Resolution.GAVE_UP
    assert resolver.on_order_seen(now + 130_000) is Resolution.FOUND
