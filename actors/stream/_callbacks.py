"""What runs on UBWA's threads: the data and signal callbacks, and the messages they tell the stream actor.

Nothing here may raise into UBWA — an exception escaping ``process_stream_data`` kills the stream silently
(its status still says running) — so every callback catches everything, logs it with the stream id, reports it
through ``on_error`` and skips the frame. Reports go straight up to ``on_report`` from this thread (the hot
path); the rest is told to the actor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from actors.stream._decisions import StreamRole
from actors.stream._frames import AccountFrame, LatestPrices, ProbeReply, classify_user_frame, parse_book_ticker
from actors.stream._ubwa import StreamRef
from engine.clock import Clock
from engine.domain import ErrorRecord
from engine.exchange import ApiResponse, BadFrame, ServerShutdown, StreamTerminated, UnknownEvent, UserDataReport

__all__ = ["Control", "DrainPrices", "Signal", "UbwaCallbacks"]


@dataclass(frozen=True, slots=True)
class Signal:
    """Inbox message: a UBWA stream signal."""

    role: StreamRole
    stream_id: str | None
    kind: str
    error: str | None


@dataclass(frozen=True, slots=True)
class Control:
    """Inbox message: a frame that concerns the stream itself rather than the account."""

    ref: StreamRef
    item: ProbeReply | StreamTerminated | ServerShutdown | UnknownEvent


@dataclass(frozen=True, slots=True)
class DrainPrices:
    """Inbox message: the price board went from empty to non-empty."""


class UbwaCallbacks:
    """The callbacks handed to UBWA; `tell` sends a message to the stream actor and never raises."""

    def __init__(
        self,
        *,
        clock: Clock,
        tell: Callable[[object], None],
        on_report: Callable[[UserDataReport | AccountFrame], None],
        on_error: Callable[[ErrorRecord], None],
        prices: LatestPrices,
    ) -> None:
        self._clock = clock
        self._tell = tell
        self._on_report = on_report
        self._on_error = on_error
        self._prices = prices

    def signals(self, role: StreamRole) -> Callable[..., None]:
        """The ``process_stream_signals`` callback of one manager."""

        def on_signal(
            signal_type: object = None, stream_id: object = None, data_record: object = None, error_msg: object = None
        ) -> None:
            try:
                error = None if error_msg is None else str(error_msg)
                self._tell(Signal(role, None if stream_id is None else str(stream_id), str(signal_type), error))
            except Exception as exc:  # noqa: BLE001 - an exception here would break UBWA's socket loop
                logger.error("{} stream signal {} lost: {!r}", role, signal_type, exc)

        return on_signal

    def restarts(self, role: StreamRole) -> Callable[[str, str | None], None]:
        """The manager's `on_restart` hook: UBWA is about to make another connection attempt."""

        def on_restart(stream_id: str, error: str | None) -> None:
            try:
                self._tell(Signal(role, stream_id, "RESTART", error))
            except Exception as exc:  # noqa: BLE001 - runs inside UBWA's reconnect loop
                logger.error("{} stream restart of {} not counted: {!r}", role, stream_id, exc)

        return on_restart

    def user_frame(self, ref: StreamRef, raw: str | bytes) -> None:
        """``process_stream_data`` of a user data stream."""
        try:
            now = self._clock.now_ms()
            item = classify_user_frame(raw)
            if not isinstance(item, ProbeReply | ApiResponse) or item.ok:
                # An error reply (to a probe or any request) proves the socket open, nothing about the
                # subscription: counted as live, a server erroring every probe kept a lost subscription forever.
                ref.last_rx_ms = now
            if isinstance(item, ProbeReply | StreamTerminated | ServerShutdown):
                self._tell(Control(ref, item))
            elif isinstance(item, ApiResponse):
                if not item.ok:
                    message = f"WS API error status={item.status} code={item.error_code} msg={item.error_message}"
                    logger.warning("user stream {} {}", ref.stream_id, message)
                    self.error("user_stream.response", message, ref, item.error_code)
            elif isinstance(item, UnknownEvent) and item.event_type == "listenKeyExpired":
                # Binance.US: the key expired and the server closes; same cure as a terminated subscription.
                self._tell(Control(ref, item))
            else:
                self._on_report(item)
        except BadFrame as exc:
            ref.last_rx_ms = self._clock.now_ms()  # the stream delivers, if not this frame
            logger.warning("user stream {} skipped a bad frame: {}", ref.stream_id, exc)
            self.error("user_stream.frame", str(exc), ref)
        except Exception as exc:  # noqa: BLE001 - UBWA kills the stream silently if anything escapes here
            logger.exception("user stream {} frame handling failed", ref.stream_id)
            self.error("user_stream.callback", f"{type(exc).__name__}: {exc}", ref)

    def market_frame(self, ref: StreamRef, raw: str | bytes) -> None:
        """``process_stream_data`` of the bookTicker stream: offer to the board, ask for a drain if needed."""
        try:
            now = self._clock.now_ms()
            ref.last_rx_ms = now
            update = parse_book_ticker(raw, now)
            if update is not None and self._prices.offer(update):
                self._tell(DrainPrices())
        except BadFrame as exc:
            logger.warning("market stream {} skipped a bad frame: {}", ref.stream_id, exc)
            self.error("market_stream.frame", str(exc), ref)
        except Exception as exc:  # noqa: BLE001 - UBWA kills the stream silently if anything escapes here
            logger.exception("market stream {} frame handling failed", ref.stream_id)
            self.error("market_stream.callback", f"{type(exc).__name__}: {exc}", ref)

    def error(self, operation: str, message: str, ref: StreamRef, code: int | None = None) -> None:
        """Report an error record through ``on_error`` (never raises)."""
        try:
            record = ErrorRecord(
                operation=operation,
                exchange_code=code,
                message=message[:500],
                context={"stream": str(ref.role), "stream_id": ref.stream_id or ""},
                time=self._clock.now(),
            )
            self._on_error(record)
        except Exception as exc:  # noqa: BLE001 - reporting an error must not raise into UBWA
            logger.error("on_error failed for {}: {!r}", operation, exc)
