"""The stream actor: sole owner of the UBWA managers, a thin shell over `StreamWatch` and the frame parsers.

Data path (hot): UBWA's thread → our callback → parse → ``on_report`` (tell up). Nothing on the hot path goes through
this actor's inbox, so a fill costs one parse over UBWA's own floor. Everything else — signals, ``serverShutdown``,
``eventStreamTerminated``, probe replies, watchdog ticks, price drains, listenKey keepalives, the root's word of an
IP ban — is told to the actor, which feeds `StreamWatch` and carries out its decisions. The callbacks given at
construction are expected to be pykka ``tell``s (cheap, never blocking), called from UBWA's threads or the actor's.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pykka
from loguru import logger
from pykka.typing import ActorMemberMixin, proxy_method

from actors._ticker import Ticker
from actors.stream._backoff import Backoff, ConnectionBudget
from actors.stream._callbacks import Control, DrainPrices, Signal, UbwaCallbacks
from actors.stream._decisions import (
    CreateStream,
    Decision,
    FireGap,
    ReportHealth,
    ResyncClock,
    ScheduleRecreate,
    SendProbe,
    StopStream,
    StreamHealth,
    StreamRole,
)
from actors.stream._frames import AccountFrame, LatestPrices, ProbeReply, probe_request
from actors.stream._listenkey import ListenKeyClient, ListenKeyError, keepalive_retry_ms, listen_key_refusal
from actors.stream._rejections import RejectionKind
from actors.stream._servertime import ServerTime
from actors.stream._settings import StreamSettings
from actors.stream._ubwa import StreamRef, UbwaManager, create_market_stream, create_user_stream, new_manager
from actors.stream._watch import StreamWatch
from engine.clock import Clock
from engine.domain import ErrorRecord, Symbol
from engine.exchange import StreamTerminated, UnknownEvent, UserDataReport

__all__ = ["StreamActor", "StreamProxy"]

ReportListener = Callable[[UserDataReport | AccountFrame], None]
PriceListener = Callable[[Symbol, Decimal, Decimal, int], None]
HealthListener = Callable[[StreamHealth], None]
GapListener = Callable[[str], None]
ErrorListener = Callable[[ErrorRecord], None]


@dataclass(frozen=True, slots=True)
class _Tick:
    now_ms: int


@dataclass(frozen=True, slots=True)
class _RecreateDue:
    role: StreamRole
    now_ms: int


class _KeepAlive:
    """Time for the listenKey keepalive (a tell to the actor from the ticker's thread)."""


def _noop(*_args: Any) -> None:
    return None


class StreamActor(pykka.ThreadingActor):
    """Owns the user data and market data UBWA managers; parses, routes, watches and reconnects.

    Args:
        settings: Endpoints, keys, symbols and limits.
        clock: The injected clock (frame receipt times, watchdog).
        ticker: Timers (watchdog ticks, reconnect backoff, listenKey keepalive); a manual ticker in tests.
        on_report: Every execution report and account event, in arrival order, unknown symbols and orders
            included (duplicates too: deduplication is the pair actor's job). Account events come unparsed
            (`AccountFrame`: parse them off UBWA's thread).
        on_price: ``(symbol, bid, ask, received_ms)``, coalesced: at most the latest per symbol per drain.
        on_health: Every health change of either stream.
        on_gap: ``reason`` — events may have been lost; reconcile over REST now. Fired once the new
            subscription is proven live after a disconnect, silence, ``eventStreamTerminated``, ``serverShutdown``
            or a refused subscription — and once after the first subscription (``first subscription``): what
            happened before it was never seen.
        on_error: A bad frame or failed callback, stored by the engine; the stream keeps going.
        rng: Jitter source (seed it in tests).
        prices: The price board between UBWA's thread and the actor (tests pass one to watch coalescing).
        wall_ms: The host's wall clock (default: the system's), which the subscription's timestamp is read from
            and corrected by the offset to the exchange's clock (`ServerTime`); `clock` may be a manual one.
    """

    def __init__(
        self,
        settings: StreamSettings,
        *,
        clock: Clock,
        ticker: Ticker,
        on_report: ReportListener,
        on_price: PriceListener = _noop,
        on_health: HealthListener = _noop,
        on_gap: GapListener = _noop,
        on_error: ErrorListener = _noop,
        rng: random.Random | None = None,
        prices: LatestPrices | None = None,
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self._clock = clock
        self._ticker = ticker
        self._on_price = on_price
        self._on_health = on_health
        self._on_gap = on_gap
        rng = rng or random.Random(settings.jitter_seed)
        # One budget for both streams: Binance counts connection attempts per IP.
        self.budget = ConnectionBudget(settings.connection_attempts_per_window, settings.connection_window_ms)
        self._listen_keys = ListenKeyClient(settings.rest_url, settings.api_key) if self._uses_listen_key else None
        self._listen_key: str | None = None
        self._server_time = ServerTime(settings.rest_url, wall_ms)
        self._watches: dict[StreamRole, StreamWatch] = {}
        roles = [StreamRole.USER] if settings.has_user_data else []
        roles += [StreamRole.MARKET] if settings.symbols else []
        for role in roles:
            # A listenKey stream cannot be probed (no WS API on it): no silence watchdog there.
            probed = role is StreamRole.USER and not self._uses_listen_key
            self._watches[role] = StreamWatch(
                role,
                backoff=Backoff(settings.min_reconnect_backoff_ms, settings.max_reconnect_backoff_ms, rng),
                budget=self.budget,
                silence_ms=settings.watchdog_silence_ms if probed else None,
                reconnect_grace_ms=settings.reconnect_grace_ms,
            )
        self._managers: dict[StreamRole, UbwaManager] = {}
        self._refs: dict[StreamRole, StreamRef] = {}
        self._prices = prices if prices is not None else LatestPrices()
        self._ubwa = UbwaCallbacks(
            clock=clock, tell=self._tell, on_report=on_report, on_error=on_error, prices=self._prices
        )
        # Latest timer handle per purpose (assigned from the ticker's thread too: one dict store, no growth).
        self._timers: dict[str, int] = {}
        self._stopping = False
        self.tick_ms = max(1, min(settings.watchdog_silence_ms // 3, settings.reconnect_grace_ms // 2))

    @property
    def _uses_listen_key(self) -> bool:
        return self.settings.exchange == "binanceus"

    # ------------------------------------------------------------------ life cycle
    def on_start(self) -> None:
        if StreamRole.USER in self._watches and not self._uses_listen_key:
            self._server_time.measure()  # the WS API subscription is signed: with the exchange's time, not ours
        for role in self._watches:
            signals, restarts = self._ubwa.signals(role), self._ubwa.restarts(role)
            self._managers[role] = new_manager(self.settings, signals, restarts, self._server_time.now_ms)
            self._apply(role, self._watches[role].start(self._now()))
        if self._watches:
            self._arm_tick()
        if self._listen_keys is not None and StreamRole.USER in self._watches:
            self._arm_keepalive()

    def on_stop(self) -> None:
        self._shutdown()

    def on_failure(self, *exc_info: Any) -> None:  # (type, value, traceback)
        logger.error("stream actor failed error={!r}; stopping the UBWA managers", exc_info[1])
        self._shutdown()

    def _shutdown(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for handle in list(self._timers.values()):
            self._ticker.cancel(handle)
        self._timers.clear()
        now = self._now()
        for role, watch in self._watches.items():
            self._apply(role, watch.stop(now))
        for role, manager in self._managers.items():
            try:
                # UBWA would DELETE the listenKey we handed it (its default), at api.binance.us whatever our URLs
                # say: Binance gives every user of the account that key, and their streams would end too.
                manager.stop_manager(delete_listen_key=False)
            except Exception as exc:  # noqa: BLE001 - shutting down: log and keep stopping the others
                logger.error("stopping the {} UBWA manager failed: {!r}", role, exc)
        # Nor do we delete the listenKey: it lapses 60 minutes after the last keepalive, and a restart within them
        # is given it again.

    # ------------------------------------------------------------------ inbox
    def on_receive(self, message: Any) -> Any:
        if self._stopping:
            return None
        if isinstance(message, Signal):
            if message.kind in ("CONNECT", "DISCONNECT", "STREAM_UNREPAIRABLE"):
                error = f": {message.error}" if message.error else ""
                logger.info("{} stream {} signal {}{}", message.role, message.stream_id, message.kind, error)
            watch = self._watches[message.role]
            self._apply(message.role, watch.on_signal(message.stream_id, message.kind, message.error, self._now()))
        elif isinstance(message, Control):
            self._control(message)
        elif isinstance(message, _Tick):
            for role, watch in self._watches.items():
                ref = self._refs.get(role)
                self._apply(role, watch.on_tick(message.now_ms, ref.last_rx_ms if ref else None))
        elif isinstance(message, _RecreateDue):
            self._apply(message.role, self._watches[message.role].recreate_due(message.now_ms))
        elif isinstance(message, DrainPrices):
            for u in self._prices.drain():
                self._call_up(StreamRole.MARKET, "on_price", self._on_price, u.symbol, u.bid, u.ask, u.event_time_ms)
        elif isinstance(message, _KeepAlive):
            self._keepalive()
        else:
            return super().on_receive(message)
        return None

    def _control(self, message: Control) -> None:
        ref, item = message.ref, message.item
        watch = self._watches[StreamRole.USER]
        now = self._now()
        if isinstance(item, ProbeReply):
            if not item.ok:
                logger.warning("user stream {}: watchdog probe {} answered with an error (status {}, wait {} ms)",
                               ref.stream_id, item.probe_id, item.status, item.retry_after_ms)  # fmt: skip
            decisions = watch.on_probe_reply(
                ref.stream_id, item.subscribed, now, ok=item.ok, status=item.status, retry_after_ms=item.retry_after_ms
            )
            self._apply(ref.role, decisions)
        elif isinstance(item, StreamTerminated):
            logger.warning("user stream {} got eventStreamTerminated", ref.stream_id)
            self._apply(ref.role, watch.on_terminated(ref.stream_id, now))
        elif isinstance(item, UnknownEvent):
            logger.warning("user stream {} got {}", ref.stream_id, item.event_type)
            self._apply(ref.role, watch.on_terminated(ref.stream_id, now, item.event_type))
        else:
            logger.warning("user stream {} got serverShutdown", ref.stream_id)
            self._apply(ref.role, watch.on_server_shutdown(ref.stream_id, now))

    def _now(self) -> int:
        return self._clock.now_ms()

    # ------------------------------------------------------------------ carrying out decisions
    def _apply(self, role: StreamRole, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, ReportHealth):
                level = "WARNING" if decision.warn else "INFO"
                logger.log(level, "{} stream health {}: {}", role, decision.health.state, decision.health.reason)
                self._call_up(role, "on_health", self._on_health, decision.health)
            elif isinstance(decision, FireGap):
                logger.info("{} stream gap ({}): reconcile now", role, decision.reason)
                self._call_up(role, "on_gap", self._on_gap, decision.reason)
            elif isinstance(decision, SendProbe):
                # timeout=0: never wait for a socket that is not ready; the next tick probes again.
                payload = probe_request(decision.probe_id)
                if not self._managers[role].send_with_stream(decision.stream_id, payload, timeout=0.0):
                    logger.debug("{} stream {} probe not sent (socket not ready)", role, decision.stream_id)
            elif isinstance(decision, StopStream):
                logger.info("{} stream {}: stopping the UBWA stream", role, decision.stream_id)
                self._managers[role].stop_stream_now(decision.stream_id)
            elif isinstance(decision, CreateStream):
                self._create_stream(role)
            elif isinstance(decision, ResyncClock):
                measured = self._server_time.remeasure()
                logger.warning("{} stream: subscription timestamp refused (-1021): host clock skew; offset to the "
                               "exchange's clock {} {} ms", role, "now" if measured is not None else "not re-measured,"
                               " still", self._server_time.offset_ms)  # fmt: skip
            elif isinstance(decision, ScheduleRecreate):
                self._schedule_recreate(role, decision.delay_ms)

    def _create_stream(self, role: StreamRole) -> None:
        manager = self._managers[role]
        ref = StreamRef(role)
        if role is StreamRole.MARKET:
            stream_id = create_market_stream(manager, self.settings, lambda raw: self._ubwa.market_frame(ref, raw))
        else:
            listen_key = None
            if self._listen_keys is not None:
                try:
                    listen_key = self._new_listen_key(self._listen_keys)
                except ListenKeyError as exc:
                    now = self._now()
                    refusal = listen_key_refusal(exc, now)
                    throttled = refusal is not None and refusal.kind is RejectionKind.THROTTLED
                    logger.log("WARNING" if throttled else "ERROR", "user stream: listenKey request failed: {}", exc)
                    self._apply(role, self._watches[role].create_failed(str(exc), refusal, now))
                    return
            on_frame = lambda raw: self._ubwa.user_frame(ref, raw)  # noqa: E731 - closes over this stream's ref
            stream_id = create_user_stream(manager, self.settings, on_frame, listen_key)
        ref.stream_id = stream_id
        self._refs[role] = ref
        logger.info("{} stream {} created", role, stream_id)
        self._apply(role, self._watches[role].created(stream_id, self._now()))

    def _new_listen_key(self, client: ListenKeyClient) -> str:
        # The account's active key, or a new one when it has none (Binance returns the active one). A key replaced
        # is already gone (lost, expired); one still alive would have been returned: nothing to delete.
        self._listen_key = client.create()
        return self._listen_key

    def _schedule_recreate(self, role: StreamRole, delay_ms: int) -> None:
        if delay_ms <= 0:
            self._apply(role, self._watches[role].recreate_due(self._now()))
            return

        def due(now_ms: int) -> None:
            self._tell(_RecreateDue(role, now_ms))

        self._timers[f"recreate-{role}"] = self._ticker.call_later(delay_ms, due)

    def _arm_tick(self) -> None:
        # Re-armed from the timer callback itself, so a manual ticker advanced by N ticks fires all N.
        def tick(now_ms: int) -> None:
            if not self._stopping:
                self._arm_tick()
                self._tell(_Tick(now_ms))

        self._timers["tick"] = self._ticker.call_later(self.tick_ms, tick)

    def _arm_keepalive(self, delay_ms: int | None = None) -> None:
        def keepalive(_now_ms: int) -> None:
            if not self._stopping:
                self._arm_keepalive()
                self._tell(_KeepAlive())

        delay_ms = self.settings.listen_key_keepalive_ms if delay_ms is None else delay_ms
        self._timers["keepalive"] = self._ticker.call_later(delay_ms, keepalive)

    def _keepalive(self) -> None:
        key, ref = self._listen_key, self._refs.get(StreamRole.USER)
        if self._listen_keys is None or key is None or ref is None:
            return
        try:
            self._listen_keys.keepalive(key)
            logger.debug("listenKey kept alive")
        except ListenKeyError as exc:
            self._ubwa.error("user_stream.listen_key", str(exc), ref, exc.code)
            retry_ms = keepalive_retry_ms(exc, self._now())
            if retry_ms is not None:  # unanswered or throttled: the key and its stream are fine, try again later
                logger.warning("listenKey keepalive failed: {}; the stream stays, retrying in {} ms", exc, retry_ms)
                handle = self._timers.pop("keepalive", None)  # the next regular one: the retry re-arms it
                if handle is not None:
                    self._ticker.cancel(handle)
                self._arm_keepalive(retry_ms)
                return
            # The key is gone (expired or closed): the stream is dead even if the socket is not. New key.
            logger.warning("listenKey keepalive failed: {}; recreating the user stream", exc)
            watch = self._watches[StreamRole.USER]
            self._apply(StreamRole.USER, watch.on_terminated(ref.stream_id, self._now(), "listenKey lost"))

    def _tell(self, message: object) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            logger.debug("stream actor gone; dropped {}", type(message).__name__)

    def _call_up(self, role: StreamRole, name: str, listener: Callable[..., None], *args: object) -> None:
        try:
            listener(*args)
        except Exception as exc:  # noqa: BLE001 - a listener bug must not stop the stream actor
            logger.exception("stream actor listener {} failed", name)
            self._ubwa.error(f"stream.{name}", f"{type(exc).__name__}: {exc}", self._refs.get(role) or StreamRef(role))

    def hold_for_ban(self, until_ms: int) -> None:
        """The IP is banned until `until_ms` (REST met a 418; the root tells): no stream reconnects before."""
        now = self._now()
        for role, watch in self._watches.items():
            self._apply(role, watch.hold(until_ms, now))
        logger.info("streams: no reconnect before the IP ban ends at {} (in {} ms)", until_ms, until_ms - now)

    # ------------------------------------------------------------------ queries (ask down)
    def health(self) -> dict[str, StreamHealth]:
        """The latest health of each stream."""
        return {str(role): w.health for role, w in self._watches.items() if w.health is not None}

    def stream_ids(self) -> dict[str, str | None]:
        """The current UBWA stream id of each stream (None while reconnecting)."""
        return {str(role): w.stream_id for role, w in self._watches.items()}

    def connection_attempts(self) -> int:
        """Connection attempts since start (both streams, ours and UBWA's own reconnects)."""
        return self.budget.total


class StreamProxy(ActorMemberMixin, pykka.ActorProxy[StreamActor]):
    """Typed proxy of `StreamActor`."""

    health = proxy_method(StreamActor.health)
    hold_for_ban = proxy_method(StreamActor.hold_for_ban)
    stream_ids = proxy_method(StreamActor.stream_ids)
    connection_attempts = proxy_method(StreamActor.connection_attempts)
