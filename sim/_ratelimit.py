"""Request-weight, order-count and connection-attempt windows with 429 → 418 bans (pure: time is passed in).

The request weight is counted per IP and shared by REST and the WS API (binance-spot.md §5: connecting to the WS API
costs 2 weight, its responses report the same REQUEST_WEIGHT limit; Binance's WS API docs: "weight is accumulated per
IP address and is shared by all connections from that address"). Connection attempts are counted per IP and per
service (the WS API and the market/user streams are separate hosts at Binance), 300 per 5 minutes each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim._config import RateLimitConfig
from sim._errors import SimError

__all__ = ["CONNECTION_WINDOW_MS", "RateLimiter"]

_MINUTE = 60_000
CONNECTION_WINDOW_MS = 5 * _MINUTE
"""The connection-attempt window (Binance: 300 attempts per 5 minutes per IP)."""
_TEN_S = 10_000
_DAY = 86_400_000
_MAX_BAN_MS = 3 * _DAY
_MAX_TRACKED = 100_000


def _banned(until: int, retry_after_s: int) -> SimError:
    return SimError(
        418,
        -1003,
        f"Way too much request weight used; IP banned until {until}. "
        "Please use WebSocket Streams for live updates to avoid bans.",
        retry_after=retry_after_s,
    )


@dataclass
class _Window:
    size_ms: int
    key: int = -1
    count: int = 0

    def current(self, now: int) -> int:
        k = now // self.size_ms
        if k != self.key:
            self.key = k
            self.count = 0
        return self.count

    def retry_after_s(self, now: int) -> int:
        return max(1, -(-((self.key + 1) * self.size_ms - now) // 1000))


@dataclass
class _IpState:
    weight: _Window = field(default_factory=lambda: _Window(_MINUTE))
    violations: int = 0
    banned_until: int = 0
    ban_ms: int = 0
    # service ("ws-api" | "stream") → connection attempts in the current 5-minute window
    connections: dict[str, _Window] = field(default_factory=dict)


@dataclass
class _AccountState:
    ten_s: _Window = field(default_factory=lambda: _Window(_TEN_S))
    day: _Window = field(default_factory=lambda: _Window(_DAY))
    # order id → (10 s window key, day window key) at placement, for the filled-order decrement
    placed: dict[int, tuple[int, int]] = field(default_factory=dict)


class RateLimiter:
    """Binance's REQUEST_WEIGHT and connection attempts (per IP) and ORDERS (per account), windows on interval
    boundaries."""

    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self._ips: dict[str, _IpState] = {}
        self._accounts: dict[str, _AccountState] = {}

    def _ip(self, ip: str) -> _IpState:
        st = self._ips.get(ip)
        if st is None:
            st = self._ips[ip] = _IpState()
        return st

    def _acct(self, account: str) -> _AccountState:
        st = self._accounts.get(account)
        if st is None:
            st = self._accounts[account] = _AccountState()
        return st

    def used_weight(self, ip: str, now: int) -> int:
        """Weight used by ``ip`` in the current minute."""
        return self._ip(ip).weight.current(now)

    def banned_until(self, ip: str, now: int) -> int:
        """The end of `ip`'s ban (epoch ms), or 0 if it is not banned at `now`."""
        until = self._ip(ip).banned_until
        return until if now < until else 0

    def retry_at(self, ip: str, now: int) -> int:
        """When `ip` may send again after a -1003 refusal: its ban's end, else the end of the weight window (ms)."""
        st = self._ip(ip)
        if now < st.banned_until:
            return st.banned_until
        st.weight.current(now)
        return (st.weight.key + 1) * st.weight.size_ms

    def ban(self, ip: str, until: int) -> None:
        """Ban `ip` until `until` (epoch ms; a shorter ban in force is extended, a longer one kept)."""
        st = self._ip(ip)
        st.banned_until = max(st.banned_until, until)

    def lift_ban(self, ip: str) -> bool:
        """End `ip`'s ban now (its next ban still doubles); False if it was not banned."""
        st = self._ips.get(ip)
        if st is None or not st.banned_until:
            return False
        st.banned_until = 0
        st.violations = 0
        return True

    def count_connection(self, ip: str, service: str, now: int) -> SimError | None:
        """Count one connection attempt of `ip` to `service`; the 429 to answer if it is over the 5-minute budget.

        Every attempt counts, refused ones too (Binance limits connection *attempts*).
        """
        if not self.config.enabled:
            return None
        window = self._ip(ip).connections.setdefault(service, _Window(CONNECTION_WINDOW_MS))
        window.current(now)
        window.count += 1
        limit = self.config.connection_attempts_per_5m
        if window.count <= limit:
            return None
        return SimError(
            429,
            -1003,
            f"Too many connection attempts; current limit is {limit} connection attempts per 5 MINUTE.",
            retry_after=window.retry_after_s(now),
        )

    def check_banned(self, ip: str, now: int) -> None:
        """Raise 418 -1003 while `ip` is banned."""
        if not self.config.enabled:
            return
        st = self._ip(ip)
        if now < st.banned_until:
            raise _banned(st.banned_until, -(-(st.banned_until - now) // 1000))

    def check_weight(self, ip: str, weight: int, now: int) -> None:
        """Raise 418 while banned, or 429 -1003 if ``weight`` would exceed the minute's limit."""
        if not self.config.enabled:
            return
        self.check_banned(ip, now)
        st = self._ip(ip)
        limit = self.config.request_weight_per_minute
        if st.weight.current(now) + weight > limit:
            st.violations += 1
            if st.violations > self.config.ban_after_violations:
                st.ban_ms = min(_MAX_BAN_MS, st.ban_ms * 2 if st.ban_ms else self.config.ban_seconds * 1000)
                st.banned_until = now + st.ban_ms
                st.violations = 0
                raise _banned(st.banned_until, st.ban_ms // 1000)
            raise SimError(
                429,
                -1003,
                f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
                "Please use WebSocket Streams for live updates to avoid polling the API.",
                retry_after=st.weight.retry_after_s(now),
            )

    def add_weight(self, ip: str, weight: int, now: int) -> None:
        """Charge ``weight`` to ``ip``."""
        w = self._ip(ip).weight
        w.current(now)
        w.count += weight

    def order_counts(self, account: str, now: int) -> tuple[int, int]:
        """Unfilled order counts (10 s, 1 day) of ``account``."""
        st = self._acct(account)
        return st.ten_s.current(now), st.day.current(now)

    def check_order(self, account: str, now: int) -> None:
        """Raise 429 -1015 if one more order would break the 10 s or daily limit: without a Retry-After header, as
        Binance sends it ("you will receive a 429 error without the Retry-After header", its limits page)."""
        if not self.config.enabled:
            return
        st = self._acct(account)
        if st.day.current(now) + 1 > self.config.orders_per_day:
            raise SimError(
                429,
                -1015,
                f"Too many new orders; current limit is {self.config.orders_per_day} orders per DAY.",
            )
        if st.ten_s.current(now) + 1 > self.config.orders_per_10s:
            raise SimError(
                429,
                -1015,
                f"Too many new orders; current limit is {self.config.orders_per_10s} orders per 10 SECOND.",
            )

    def count_order(self, account: str, order_id: int, now: int) -> None:
        """Count a newly accepted order."""
        st = self._acct(account)
        st.ten_s.current(now)
        st.day.current(now)
        st.ten_s.count += 1
        st.day.count += 1
        st.placed[order_id] = (st.ten_s.key, st.day.key)
        if len(st.placed) > _MAX_TRACKED:
            # Orders never filled would accumulate: forget those outside the current 10 s window
            # (their later fill then no longer decrements the daily count, a bounded inaccuracy).
            st.placed = {k: v for k, v in st.placed.items() if v[0] == st.ten_s.key}

    def order_filled(self, account: str, order_id: int, now: int) -> None:
        """First fill of an order: decrement the windows it was counted in, if still current (FAQ)."""
        st = self._acct(account)
        keys = st.placed.pop(order_id, None)
        if keys is None:
            return
        st.ten_s.current(now)
        st.day.current(now)
        if st.ten_s.key == keys[0] and st.ten_s.count > 0:
            st.ten_s.count -= 1
        if st.day.key == keys[1] and st.day.count > 0:
            st.day.count -= 1
