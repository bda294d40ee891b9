"""The paper price feed's retry jitter comes from the simulator's seed: same seed, same delays."""

from __future__ import annotations

from sim import FeedError, PublicPriceFeed

_URL = "http://127.0.0.1:1"  # never contacted: only the retry delays are drawn


def _delays(seed: int, n: int = 8) -> list[float]:  # float-ok: seconds
    feed = PublicPriceFeed(_URL, ["BTCUSDT"], transport="rest", seed=seed, backoff_initial_s=0.5, backoff_max_s=4.0)
    return [feed._failed(FeedError("venue down")) for _ in range(n)]  # the delays a failure waits


def test_two_feeds_with_the_same_seed_back_off_alike() -> None:
    # Before: each feed drew its jitter from an unseeded random.Random(), so two runs of one seed differed.
    assert _delays(7) == _delays(7)


def test_another_seed_gives_other_delays_within_the_same_bounds() -> None:
    first, other = _delays(7), _delays(8)
    assert first != other
    for delays in (first, other):
        for delay, ceiling in zip(delays, [0.5, 1, 2, 4, 4, 4, 4, 4], strict=True):
            assert ceiling / 2 <= delay <= ceiling
