"""Stream actor settings: where to connect, with which key, and the watchdog and reconnect limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["UBWA_EXCHANGES", "ExchangeKind", "StreamSettings"]

ExchangeKind = Literal["binance", "binance-testnet", "binanceus"]

UBWA_EXCHANGES: dict[str, str] = {
    "binance": "binance.com",
    "binance-testnet": "binance.com-testnet",
    "binanceus": "binance.us",
}
"""The engine's exchange kind → UBWA's `exchange` name."""


@dataclass(frozen=True)
class StreamSettings:
    """Everything the stream actor needs; frozen, and the key and secret never appear in its repr.

    Attributes:
        exchange: ``binance`` / ``binance-testnet`` (user data over the WS API) or ``binanceus`` (REST listenKey).
        ws_api_url: WS API endpoint used verbatim by UBWA (``wss://ws-api.binance.com/ws-api/v3``).
        stream_url: Market stream base (``wss://stream.binance.com:9443/``); also hosts ``/ws/<listenKey>``.
        rest_url: REST base for the Binance.US listenKey flow (``https://api.binance.us``).
        api_key / api_secret: the key and its secret (HMAC, or an RSA/Ed25519 PEM) for the user data
            subscription; empty → no user data stream.
        symbols: Exchange symbols (``BTCUSDT``) whose ``bookTicker`` feeds ``on_price``; empty → no market stream.
        ping_interval_s / ping_timeout_s: UBWA's websocket keepalive (a dead peer is dropped after about their sum).
        watchdog_silence_ms: Nothing received (events or probe replies; an error reply does not count) for this
            long → silent → recreate.
            The watchdog probes the WS API (``session.status``) after a third of it, so a quiet but healthy
            stream is never declared silent.
        reconnect_grace_ms: How long UBWA may try to reconnect on its own (it retries every 0.1 s, no backoff)
            before the actor stops that stream and reconnects with its own backoff and connection budget.
        min_reconnect_backoff_ms / max_reconnect_backoff_ms: Exponential backoff between our reconnects.
        connection_attempts_per_window / connection_window_ms: Our share of Binance's limit of 300 connection
            attempts per 5 minutes per IP (both streams together).
        listen_key_keepalive_ms: Binance.US: PUT the listenKey this often (Binance expires it after 60 min). More
            often than the 30 minutes Binance asks for: the PUT is also how a key ended by someone else (another
            user of the account deleted it; its stream then goes silent, unprobed) is found (weight 2).
        report_handoff_pause_us: After telling a pair actor an execution report, UBWA's thread sleeps this
            long (0: not at all) — see `actors._feeds.ReportRouter`.
        jitter_seed: Seed of the reconnect backoff's jitter (None: from the OS). `Engine.start` logs the one it
            uses, so a run can be replayed.
    """

    exchange: ExchangeKind = "binance"
    ws_api_url: str = "wss://ws-api.binance.com/ws-api/v3"
    stream_url: str = "wss://stream.binance.com:9443/"
    rest_url: str = "https://api.binance.com"
    api_key: str = field(default="", repr=False)
    api_secret: str = field(default="", repr=False)
    symbols: tuple[str, ...] = ()
    ping_interval_s: float = 5.0  # float-ok: seconds
    ping_timeout_s: float = 10.0  # float-ok: seconds
    watchdog_silence_ms: int = 30_000
    reconnect_grace_ms: int = 5_000
    min_reconnect_backoff_ms: int = 250
    max_reconnect_backoff_ms: int = 30_000
    connection_attempts_per_window: int = 250
    connection_window_ms: int = 300_000
    listen_key_keepalive_ms: int = 5 * 60_000
    report_handoff_pause_us: int = 20
    jitter_seed: int | None = None

    def __post_init__(self) -> None:
        if self.exchange not in UBWA_EXCHANGES:
            raise ValueError(f"unknown exchange kind {self.exchange!r}")
        if self.watchdog_silence_ms < 3:
            raise ValueError("watchdog_silence_ms must be at least 3 ms")
        if not 0 < self.min_reconnect_backoff_ms <= self.max_reconnect_backoff_ms:
            raise ValueError("need 0 < min_reconnect_backoff_ms <= max_reconnect_backoff_ms")
        if self.connection_attempts_per_window < 1 or self.connection_window_ms < 1:
            raise ValueError("the connection budget needs at least one attempt per window")
        if bool(self.api_key) != bool(self.api_secret):
            raise ValueError("api_key and api_secret go together")

    @property
    def ubwa_exchange(self) -> str:
        """UBWA's name for the exchange."""
        return UBWA_EXCHANGES[self.exchange]

    @property
    def has_user_data(self) -> bool:
        """True when keys are configured (a user data stream is opened)."""
        return bool(self.api_key)
