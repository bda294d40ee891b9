"""The idempotency-key Bloom filter: no false negatives, false positives near the configured rate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.pair._seen import SeenKeys


@given(st.lists(st.text(min_size=1, max_size=40), max_size=300, unique=True))
def test_every_added_key_is_found(keys: list[str]) -> None:
    seen = SeenKeys(capacity=1000, error_rate=0.01)
    for key in keys:
        seen.add(key)
    assert all(key in seen for key in keys)


def test_false_positive_rate_is_bounded() -> None:
    seen = SeenKeys(capacity=10_000, error_rate=0.01)
    for i in range(10_000):
        seen.add(f"added-{i}")
    false_positives = sum(f"other-{i}" in seen for i in range(20_000))
    assert false_positives / 20_000 < 0.02


def test_the_filter_grows_and_keeps_its_false_positive_rate_past_its_capacity() -> None:
    # A fixed filter of 1,000 keys holding 10,000 answered "maybe" for nearly every new key: each one a blocking
    # database lookup on the order path (a pair's keys are all reloaded at every start and only ever grow).
    seen = SeenKeys(capacity=1_000, error_rate=0.01)
    for i in range(10_000):
        seen.add(f"added-{i}")
    assert seen.layers >= 4 and seen.count == 10_000
    assert all(f"added-{i}" in seen for i in range(10_000))
    false_positives = sum(f"other-{i}" in seen for i in range(20_000))
    assert false_positives / 20_000 < 0.02, false_positives
