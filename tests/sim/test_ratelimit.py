"""Request-weight and order-count windows, 429 → 418 bans, headers (pure and over REST)."""

from __future__ import annotations

import pytest
import requests

from sim import RateLimitConfig, SimConfig, SimError, Simulator
from sim._ratelimit import RateLimiter
from tests.sim.test_auth import _signed

T0 = 1_767_225_600_000  # a minute boundary (and a day boundary)


class ManualClock:
    """An injected simulator clock advanced by hand."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_weight_window_resets_on_minute_boundary() -> None:
    rl = RateLimiter(RateLimitConfig(request_weight_per_minute=10))
    rl.add_weight("ip", 10, T0 + 59_000)
    with pytest.raises(SimError) as exc:
        rl.check_weight("ip", 1, T0 + 59_500)
    assert (exc.value.status, exc.value.code, exc.value.retry_after) == (429, -1003, 1)
    assert "current limit is 10 request weight per 1 MINUTE" in exc.value.msg
    rl.check_weight("ip", 10, T0 + 60_000)  # new minute
    assert rl.used_weight("ip", T0 + 60_000) == 0


def test_continued_abuse_leads_to_escalating_bans() -> None:
    rl = RateLimiter(RateLimitConfig(request_weight_per_minute=1, ban_after_violations=2, ban_seconds=120))
    rl.add_weight("ip", 1, T0)
    for _ in range(2):
        with pytest.raises(SimError) as exc:
            rl.check_weight("ip", 1, T0)
        assert exc.value.status == 429
    with pytest.raises(SimError) as exc:
        rl.check_weight("ip", 1, T0)
    assert (exc.value.status, exc.value.retry_after) == (418, 120)
    assert "IP banned until" in exc.value.msg
    with pytest.raises(SimError) as exc:
        rl.check_weight("ip", 1, T0 + 119_000)
    assert exc.value.status == 418 and exc.value.retry_after == 1
    rl.check_weight("ip", 1, T0 + 120_000)  # ban over, fresh minute
    rl.add_weight("ip", 1, T0 + 120_000)
    for _ in range(3):
        with pytest.raises(SimError) as exc:
            rl.check_weight("ip", 1, T0 + 120_000)
    assert exc.value.status == 418 and exc.value.retry_after == 240  # the next ban doubles


def test_order_counts_and_filled_decrement() -> None:
    rl = RateLimiter(RateLimitConfig(orders_per_10s=2, orders_per_day=3))
    rl.check_order("a", T0)
    rl.count_order("a", 1, T0)
    rl.count_order("a", 2, T0)
    with pytest.raises(SimError) as exc:
        rl.check_order("a", T0 + 1)
    assert (exc.value.status, exc.value.code) == (429, -1015)
    assert exc.value.msg == "Too many new orders; current limit is 2 orders per 10 SECOND."
    rl.order_filled("a", 1, T0 + 2)
    assert rl.order_counts("a", T0 + 2) == (1, 1)
    rl.check_order("a", T0 + 2)
    rl.count_order("a", 3, T0 + 10_000)
    rl.count_order("a", 4, T0 + 10_000)
    rl.order_filled("a", 2, T0 + 10_001)  # placed in an earlier 10 s window: only the day count drops
    assert rl.order_counts("a", T0 + 10_001) == (2, 2)
    rl.count_order("a", 5, T0 + 20_000)
    with pytest.raises(SimError) as exc:
        rl.check_order("a", T0 + 20_000)
    assert "orders per DAY" in exc.value.msg


def test_rest_weight_headers_429_418_and_order_limits() -> None:
    clock = ManualClock(T0 + 1000)
    cfg = SimConfig(
        rate_limits=RateLimitConfig(
            request_weight_per_minute=30, orders_per_10s=2, ban_after_violations=1, ban_seconds=60
        )
    )
    with Simulator(cfg, clock=clock) as sim:
        acc = sim.accounts[0]
        url = sim.urls.rest + "/api/v3/exchangeInfo"
        assert requests.get(url, timeout=5).headers["X-MBX-USED-WEIGHT-1M"] == "20"
        params = {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "0.001",
            "price": "60000",
        }
        r1 = _signed(sim, "POST", "/api/v3/order", params, acc.api_key, acc.secret, ts=clock.now)
        assert r1.status_code == 200
        assert (r1.headers["X-MBX-ORDER-COUNT-10S"], r1.headers["X-MBX-ORDER-COUNT-1D"]) == ("1", "1")
        assert r1.headers["X-MBX-USED-WEIGHT-1M"] == "20"  # a successful order costs 0 weight
        mkt = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
        r2 = _signed(sim, "POST", "/api/v3/order", mkt, acc.api_key, acc.secret, ts=clock.now)
        assert r2.headers["X-MBX-ORDER-COUNT-10S"] == "1"  # filled immediately → decremented
        _signed(sim, "POST", "/api/v3/order", params, acc.api_key, acc.secret, ts=clock.now)
        r4 = _signed(sim, "POST", "/api/v3/order", params, acc.api_key, acc.secret, ts=clock.now)
        # Binance: "you will receive a 429 error without the Retry-After header"; the message names the window.
        assert (r4.status_code, r4.json()["code"], r4.headers.get("Retry-After")) == (429, -1015, None)
        assert r4.json()["msg"].endswith("orders per 10 SECOND.")
        assert r4.headers["X-MBX-USED-WEIGHT-1M"] == "21"  # a rejected order is charged
        clock.now += 10_000
        assert _signed(sim, "POST", "/api/v3/order", params, acc.api_key, acc.secret, ts=clock.now).status_code == 200
        assert requests.get(url, timeout=5).status_code == 429
        banned = requests.get(url, timeout=5)
        assert (banned.status_code, banned.json()["code"], banned.headers["Retry-After"]) == (418, -1003, "60")
        clock.now += 60_000
        assert requests.get(url, timeout=5).status_code == 200
