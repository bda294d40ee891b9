"""UBWA glue: the manager (with one stall removed), and how each stream is created. Used only by the actor."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from loguru import logger
from unicorn_binance_websocket_api import BinanceWebSocketApiManager

from actors.stream._decisions import StreamRole
from actors.stream._settings import StreamSettings

__all__ = ["StreamRef", "UbwaManager", "create_market_stream", "create_user_stream", "new_manager", "sign_with_pem"]

FrameCallback = Callable[[str], None]


class StreamRef:
    """One UBWA stream as its callbacks know it (the id is filled in once `create_stream` returns)."""

    __slots__ = ("last_rx_ms", "role", "stream_id")

    def __init__(self, role: StreamRole) -> None:
        self.role = role
        self.stream_id: str | None = None
        self.last_rx_ms: int | None = None


class UbwaManager(BinanceWebSocketApiManager):
    """UBWA's manager with three changes the stream actor needs.

    - No 5 s stall on every market-stream (re)connect: for a multiplexed market stream UBWA builds the URL *and*
      calls `subscribe_to_stream`, whose `send_with_stream` sleeps (blocking the stream's own event loop) up to
      5 s waiting for a socket that cannot be ready before that very loop connects it, then queues the
      SUBSCRIBE anyway. Not waiting when the socket is not ready takes the queueing path at once.
    - Every reconnect attempt is reported (`on_restart`): UBWA retries every 0.1 s with no signal for a failed
      attempt, and each one counts against Binance's 300 connection attempts per 5 minutes.
    - `stop_stream_now` closes the socket instead of waiting for the next frame.
    - The user-data subscription is signed with RSA or Ed25519 keys too (UBWA signs with HMAC only): Binance's
      WS API takes a base64 signature of the same `apiKey=…&timestamp=…` payload from either.
    - Its timestamp is the exchange's time (`timestamp_ms`: the host's plus the measured offset), not the host's
      raw `time.time()`: a host clock more than 1 s fast is refused with -1021 on every try.
    """

    on_restart: Callable[[str, str | None], None] | None = None
    timestamp_ms: Callable[[], int] | None = None
    """The subscription's timestamp (called on UBWA's thread: must not block); None: the host's clock."""

    def _stream_is_restarting(self, stream_id: Any, error_msg: Any = None) -> bool:
        out = bool(super()._stream_is_restarting(stream_id, error_msg=error_msg))
        hook = self.on_restart
        if hook is not None:
            hook(str(stream_id), None if error_msg is None else str(error_msg))
        return out

    def _build_userdata_subscribe_payload(self, stream_id: str) -> dict[str, Any]:
        secret = str(self.stream_list[stream_id]["api_secret"])
        api_key = str(self.stream_list[stream_id]["api_key"])
        clock = self.timestamp_ms
        timestamp = clock() if clock is not None else int(self.get_timestamp())
        payload = f"apiKey={api_key}&timestamp={timestamp}".encode()
        if "PRIVATE KEY" in secret:
            signature = sign_with_pem(secret, payload)
        else:
            signature = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
        return {
            "id": str(uuid.uuid4()),
            "method": "userDataStream.subscribe.signature",
            "params": {"apiKey": api_key, "timestamp": timestamp, "signature": signature},
        }

    def send_with_stream(self, stream_id: Any = None, payload: Any = None, timeout: Any = 5.0) -> bool:
        if not self.is_socket_ready(stream_id=stream_id):
            return False
        return bool(super().send_with_stream(stream_id=stream_id, payload=payload, timeout=timeout))

    def stop_stream_now(self, stream_id: str) -> None:
        """Stop a stream and close its socket now.

        `stop_stream` only raises a flag that the socket loop checks between receives, and after ten frames a
        market stream receives without a timeout: on a quiet market its (non-daemon) thread would linger until
        the next frame. Closing the socket on the stream's own loop ends the receive at once.
        """
        self.stop_stream(stream_id, delete_listen_key=False)
        loop = self.get_event_loop_by_stream_id(stream_id=stream_id)
        socket = self.sockets.get(stream_id)
        connection = getattr(socket, "websocket", None)
        if loop is None or connection is None or loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(connection.close(), loop)
        except RuntimeError as exc:  # the loop closed in between: the stream is gone anyway
            logger.debug("stream {} already closed: {!r}", stream_id, exc)


def sign_with_pem(pem: str, payload: bytes) -> str:
    """Base64 signature of `payload` with an RSA (PKCS#1 v1.5, SHA-256) or Ed25519 PKCS#8 PEM private key."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.sign(payload)
    else:
        raise ValueError("only RSA and Ed25519 private keys sign Binance requests")
    return base64.b64encode(raw).decode()


def new_manager(
    settings: StreamSettings,
    on_signal: Callable[..., None],
    on_restart: Callable[[str, str | None], None],
    timestamp_ms: Callable[[], int] | None = None,
) -> UbwaManager:
    """A manager for one stream role, reporting signals to `on_signal` and reconnect attempts to `on_restart`,
    signing a user data subscription with `timestamp_ms` (the exchange's time; None: the host's)."""
    manager = UbwaManager(
        exchange=settings.ubwa_exchange,
        websocket_api_base_uri=settings.ws_api_url,
        websocket_base_uri=settings.stream_url,
        warn_on_update=False,  # the default asks GitHub for updates, without a timeout
        output_default="raw_data",
        process_stream_signals=on_signal,
        high_performance=True,  # create_stream must not block the actor while the server is down
        disable_colorama=True,
        ping_interval_default=settings.ping_interval_s,
        ping_timeout_default=settings.ping_timeout_s,
    )
    manager.on_restart = on_restart
    manager.timestamp_ms = timestamp_ms
    return manager


def create_user_stream(
    manager: UbwaManager, settings: StreamSettings, on_frame: FrameCallback, listen_key: str | None
) -> str:
    """``!userData``: over the WS API (binance, testnet), or at ``/ws/<listenKey>`` (binanceus)."""
    kwargs: dict[str, Any] = {}
    if listen_key is not None:
        # UBWA's own REST client ignores `restful_base_uri` (binance-spot.md §9.1): we manage the key ourselves.
        kwargs = {"listen_key": listen_key, "keep_listen_key_alive": False}
    return str(
        manager.create_stream(
            ["arr"],
            ["!userData"],
            stream_label="user-data",
            api_key=settings.api_key,
            api_secret=settings.api_secret,
            process_stream_data=on_frame,
            **kwargs,
        )
    )


def create_market_stream(manager: UbwaManager, settings: StreamSettings, on_frame: FrameCallback) -> str:
    """``<symbol>@bookTicker`` for every configured symbol, multiplexed on one connection."""
    return str(
        manager.create_stream(
            ["bookTicker"],
            [sym.lower() for sym in settings.symbols],
            stream_label="book-ticker",
            process_stream_data=on_frame,
        )
    )
