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
