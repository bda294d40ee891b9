"""The stream watchdog: a pure state machine over UBWA signals, frames and ticks that returns decisions.

One `StreamWatch` per UBWA stream (user data, market data). It never touches a socket or a clock: the actor feeds
it what happened (with `now_ms`) and carries out what it returns — report health, fire a gap (reconcile now), probe
the WS API, stop the UBWA stream, create a new one now or after a delay.

What UBWA does by itself and what it does not (client-libraries.md, binance-spot.md §6.4–6.6):
- it reconnects after a dropped socket (DISCONNECT → CONNECT) and re-subscribes, but without backoff (every 0.1 s,
  forever): after a few tries, or ``reconnect_grace_ms``, we stop its stream and go on with our backoff;
- it never re-subscribes after ``eventStreamTerminated`` and ignores ``serverShutdown``: we recreate;
- a rejected subscription crashes the stream for good (STREAM_UNREPAIRABLE): fatal at once for a bad key or
  signature; for a rate limit or the exchange's own trouble (`_rejections`) retried slowly — never before
  ``throttle_floor_ms`` or the wait the exchange names — and never fatal; for a timestamp out of the exchange's
  window (-1021, clock skew) retried with backoff after re-measuring the clock offset, never fatal; anything else
  retried with backoff and fatal after a few rejections in a row;
- a quiet user stream is indistinguishable from a dead one, so the watchdog probes (``session.status``) after a
  third of the silence limit; nothing received for the whole limit is silence (an error reply to a probe does not
  count: it proves the socket open, not the subscription); a probe refused with 429/418 (the WS API shares the IP's
  weight with REST), or a ban REST met, holds probes, the silence verdict and reconnects until the exchange's wait.

Events sent while the subscription was down are lost for good, so every such episode opens a *gap*; it is fired
(``FireGap``) once the new subscription is proven live (a probe reply saying so), which is the moment a REST
reconciliation can no longer miss anything. The user stream starts with a gap open: everything between the
engine's start (crash recovery's REST lookups) and the first live subscription was never seen either.
"""

from __future__ import annotations

from actors.stream._backoff import Backoff, ConnectionBudget
from actors.stream._decisions import (
    CreateStream,
    Decision,
    FireGap,
    HealthState,
    ReportHealth,
    ResyncClock,
    ScheduleRecreate,
    SendProbe,
    StopStream,
    StreamHealth,
    StreamRole,
    quiet_change,
)
from actors.stream._phase import _UBWA_TRIES, FIRST_SUBSCRIPTION, _Phase
from actors.stream._rejections import THROTTLE_MIN_DELAY_MS, Rejection, RejectionKind, stream_rejection

__all__ = ["FIRST_SUBSCRIPTION", "StreamWatch"]


class StreamWatch:
    """Health and reconnect decisions for one stream. Not thread-safe: the stream actor owns it.
    ``throttle_floor_ms`` is the least wait after a rate-limited refusal (default: the backoff's cap, at least
    `THROTTLE_MIN_DELAY_MS`); ``max_rejections`` other refusals in a row (since the stream was last live) are
    fatal, as many clock-skew refusals in a row are alerted once (never fatal)."""

    def __init__(
        self,
        role: StreamRole,
        *,
        backoff: Backoff,
        budget: ConnectionBudget,
        silence_ms: int | None,
        reconnect_grace_ms: int,
        max_rejections: int = 3,
        probe_prefix: str = "bexec-wd-",
        throttle_floor_ms: int | None = None,
    ) -> None:
        self.role = role
        self.backoff = backoff
        self.budget = budget
        # Only the user stream is watched for silence: a market stream is legitimately quiet when prices rest.
        self.silence_ms = silence_ms if role is StreamRole.USER else None
        self.probe_interval_ms = max(1, self.silence_ms // 3) if self.silence_ms else None
        self.reconnect_grace_ms = reconnect_grace_ms
        self.max_rejections = max_rejections
        self.probe_prefix = probe_prefix
        if throttle_floor_ms is None:
            throttle_floor_ms = max(backoff.max_ms, THROTTLE_MIN_DELAY_MS)
        self.throttle_floor_ms = throttle_floor_ms
        self.phase = _Phase.IDLE
        self.stream_id: str | None = None
        self.phase_since_ms = 0
        # Whatever happened on the account before the first live subscription was never seen: a gap too.
        self.gap_reason: str | None = FIRST_SUBSCRIPTION if role is StreamRole.USER else None
        self.reconnects = 0
        self.rejections = 0
        self.throttled = 0
        """Rate-limited refusals since the stream was last live (one episode; the first one alerts)."""
        self.skewed = 0
        """Clock-skew (-1021) refusals since the stream was last live."""
        self.health: StreamHealth | None = None
        self._probe_seq = 0
        self._probe_sent_ms: int | None = None
        self._now_ms = 0
        self._ubwa_tries = 0
        """UBWA's reconnect tries since the stream was last live."""
        self.hold_until_ms = 0
        """A probe was refused for a rate limit or a ban (429/418), or REST met a ban (`hold`): until then no probe,
        no silence verdict and no reconnect (each would be refused too; going on past 429s gets an IP banned)."""

    # ------------------------------------------------------------------ helpers
    def _t(self, now_ms: int) -> int:
        # Ticks and signals can be handled slightly out of time order; the budget needs monotonic time.
        self._now_ms = max(self._now_ms, now_ms)
        return self._now_ms

    def _enter(self, phase: _Phase, now_ms: int) -> None:
        self.phase = phase
        self.phase_since_ms = now_ms

    def _report(self, state: HealthState, reason: str, now_ms: int, *, warn: bool = False) -> ReportHealth:
        self.health = StreamHealth(self.role, state, reason, now_ms, self.reconnects, self.stream_id)
        return ReportHealth(self.health, warn)

    def _open_gap(self, reason: str) -> None:
        if self.role is StreamRole.USER and self.gap_reason is None:
            self.gap_reason = reason

    def _probe(self, now_ms: int) -> list[Decision]:
        if self.stream_id is None or self.probe_interval_ms is None:
            return []
        self._probe_seq += 1
        self._probe_sent_ms = now_ms
        return [SendProbe(self.stream_id, f"{self.probe_prefix}{self._probe_seq}")]

    def _attempt(self, now_ms: int) -> list[Decision]:
        held, wait = self.hold_until_ms - now_ms, self.budget.wait_ms(now_ms)
        if held > 0 or wait > 0:  # a hold begun since this recreate was scheduled (a ban) defers it
            self._enter(_Phase.BACKOFF, now_ms)
            spent = f"connection budget spent ({self.budget.limit} per {self.budget.window_ms} ms); wait {wait} ms"
            reason = f"rate limited or banned: no connection for {held} ms" if held >= wait else spent
            return [self._report(HealthState.RECONNECTING, reason, now_ms), ScheduleRecreate(max(held, wait))]
        self.budget.try_take(now_ms)
        self._enter(_Phase.CREATING, now_ms)
        return [CreateStream()]

    def _recreate(
        self, state: HealthState, reason: str, now_ms: int, *, floor_ms: int = 0, warn: bool = False
    ) -> list[Decision]:
        out: list[Decision] = []
        if self.stream_id is not None:
            out.append(StopStream(self.stream_id))
        self.stream_id = None
        self._probe_sent_ms = None
        self._enter(_Phase.BACKOFF, now_ms)
        delay = self.backoff.next_delay_ms(max(floor_ms, self.hold_until_ms - now_ms))
        report = self._report(state, f"{reason}; reconnecting in {delay} ms", now_ms, warn=warn)
        return [*out, report, ScheduleRecreate(delay)]

    def _throttled(self, rejection: Rejection, error: str, now_ms: int) -> list[Decision]:
        # Never fatal and never counted toward `max_rejections`: a rate limit passes by itself.
        self.throttled += 1
        floor = max(self.throttle_floor_ms, rejection.retry_after_ms or 0)
        # The first refusal of an episode is reported unrepairable (the supervisor alerts on that); the retries
        # that follow until the stream is live again are only reconnecting: one alert per episode, not per try.
        state = HealthState.UNREPAIRABLE if self.throttled == 1 else HealthState.RECONNECTING
        reason = f"{rejection.label}, refusal {self.throttled} in a row: {error}"
        return self._recreate(state, reason, now_ms, floor_ms=floor, warn=True)

    def _clock_skew(self, rejection: Rejection, error: str, now_ms: int) -> list[Decision]:
        # The key is fine, the host clock is off: re-measure the offset (before the retry, which may be due at
        # once) and back off like any transient failure. A fatal stream would leave fills to the REST
        # reconciliation until a restart; alerted once, when re-measuring has not helped after a few tries.
        self.skewed += 1
        state = HealthState.UNREPAIRABLE if self.skewed == self.max_rejections else HealthState.RECONNECTING
        reason = f"{rejection.label}: host clock skew, offset re-measured (refusal {self.skewed} in a row): {error}"
        return [ResyncClock(), *self._recreate(state, reason, now_ms, warn=True)]

    def _live(self, now_ms: int) -> list[Decision]:
        self._enter(_Phase.LIVE, now_ms)
        self.backoff.reset()
        self._ubwa_tries = 0
        self.rejections = 0
        self.throttled = 0
        self.skewed = 0
        reason = "subscribed" if self.role is StreamRole.USER else "connected"
        out: list[Decision] = [self._report(HealthState.CONNECTED, reason, now_ms)]
        if self.gap_reason is not None:
            out.append(FireGap(self.gap_reason))
            self.gap_reason = None
        return out

    def _current(self, stream_id: str | None) -> bool:
        return stream_id is not None and stream_id == self.stream_id

    # ------------------------------------------------------------------ inputs
    def start(self, now_ms: int) -> list[Decision]:
        """Open the stream for the first time."""
        if self.phase is not _Phase.IDLE:
            return []
        return self._attempt(self._t(now_ms))

    def created(self, stream_id: str, now_ms: int) -> list[Decision]:
        """UBWA accepted `create_stream` and returned `stream_id`."""
        now = self._t(now_ms)
        self.stream_id = stream_id
        self._enter(_Phase.CONNECTING, now)
        return [self._report(HealthState.CONNECTING, "connecting", now)]

    def hold(self, until_ms: int, now_ms: int) -> list[Decision]:
        """The IP is banned until `until_ms` (REST met a 418): no probe, silence verdict or reconnect before; a
        connection being made (ours, or UBWA's loop) is stopped: its handshakes would be refused."""
        now = self._t(now_ms)
        self.hold_until_ms = max(self.hold_until_ms, until_ms)
        if now >= self.hold_until_ms or self.phase not in (_Phase.CONNECTING, _Phase.RECONNECTING):
            return []
        self._open_gap("disconnect")
        return self._recreate(HealthState.RECONNECTING, "IP banned: stopped connecting", now, warn=True)

    def recreate_due(self, now_ms: int) -> list[Decision]:
        """A scheduled recreate is due."""
        if self.phase is not _Phase.BACKOFF:
            return []
        now = self._t(now_ms)
        out = self._attempt(now)
        if isinstance(out[-1], CreateStream):
            self.reconnects += 1
        return out

    def on_signal(self, stream_id: str | None, kind: str, error: str | None, now_ms: int) -> list[Decision]:
        """A UBWA stream signal (CONNECT, DISCONNECT, STREAM_UNREPAIRABLE, FIRST_RECEIVED_DATA, STOP), or RESTART:
        UBWA is about to make another connection attempt on its own."""
        if not self._current(stream_id) or self.phase in (_Phase.FATAL, _Phase.STOPPED):
            return []
        now = self._t(now_ms)
        if kind == "RESTART":
            return self._restart(now, error)
        if kind == "CONNECT":
            if self.phase is _Phase.RECONNECTING:
                self.reconnects += 1
            if self.silence_ms is None:
                return self._live(now)
            self._enter(_Phase.SUBSCRIBING, now)
            return self._probe(now) if now >= self.hold_until_ms else []  # held: the first probe once it ends
        if kind == "DISCONNECT":
            if self.phase not in (_Phase.CONNECTING, _Phase.SUBSCRIBING, _Phase.LIVE):
                return []
            self._open_gap("disconnect")
            if now < self.hold_until_ms:
                # Rate limited or banned (Binance disconnects a banned IP): UBWA's reconnects every 0.1 s would all
                # be refused at the handshake. Stop them and come back when the exchange said to.
                return self._recreate(HealthState.RECONNECTING, "disconnected while rate limited", now, warn=True)
            self._enter(_Phase.RECONNECTING, now)
            return [self._report(HealthState.RECONNECTING, "disconnected; UBWA is reconnecting", now)]
        if kind == "STREAM_UNREPAIRABLE":
            return self._unrepairable(error or "stream unrepairable", now)
        return []

    def _restart(self, now: int, error: str | None) -> list[Decision]:
        # UBWA is about to try again (every 0.1 s, forever): each try counts against Binance's limit.
        if self.phase not in (_Phase.CONNECTING, _Phase.SUBSCRIBING, _Phase.LIVE, _Phase.RECONNECTING):
            return []
        self.budget.note(now)
        rejection = stream_rejection(error, now)
        if rejection is not None and rejection.kind is RejectionKind.THROTTLED:
            # A handshake refused with 418 (IP banned): UBWA would knock again every 0.1 s, which only
            # lengthens the ban. Stop its loop now and come back when the ban is over.
            self._open_gap("disconnect")
            return self._throttled(rejection, error or "", now)
        self._ubwa_tries += 1
        wait = self.budget.wait_ms(now)
        if wait <= 0:
            if self._ubwa_tries <= _UBWA_TRIES:
                return []
            # UBWA would go on every 0.1 s for the whole outage (and a server that accepts then drops keeps the
            # grace period from ever running out): stop its loop and pace the attempts with the backoff.
            self._open_gap("disconnect")
            return self._recreate(HealthState.RECONNECTING, f"UBWA's reconnects keep failing ({error or 'no error'})",
                                  now)  # fmt: skip
        # Over budget: stop UBWA's loop and wait until an attempt fits again.
        self._open_gap("disconnect")
        out: list[Decision] = [StopStream(self.stream_id)] if self.stream_id is not None else []
        self.stream_id = None
        self._enter(_Phase.BACKOFF, now)
        reason = f"connection budget spent by reconnects ({error or 'no error'}); wait {wait} ms"
        return [*out, self._report(HealthState.RECONNECTING, reason, now), ScheduleRecreate(wait)]

    def _unrepairable(self, error: str, now: int) -> list[Decision]:
        self._open_gap("unrepairable")
        rejection = stream_rejection(error, now)
        if rejection is None:  # the socket broke, nobody refused anything
            return self._recreate(HealthState.UNREPAIRABLE, error, now)
        if rejection.kind is RejectionKind.THROTTLED:
            return self._throttled(rejection, error, now)
        if rejection.kind is RejectionKind.CLOCK:
            return self._clock_skew(rejection, error, now)
        self.rejections += 1
        if rejection.kind is RejectionKind.FATAL or rejection.code == 0 or self.rejections >= self.max_rejections:
            # A bad key stays bad: no retry storm, a clear fatal state for the operator. An unexplained refusal
            # (no code), or the same kind of refusal again and again, is treated alike.
            self._enter(_Phase.FATAL, now)
            self.stream_id = None
            return [self._report(HealthState.FATAL, f"user data subscription rejected: {error}", now)]
        return self._recreate(HealthState.UNREPAIRABLE, error, now)

    def create_failed(self, error: str, rejection: Rejection | None, now_ms: int) -> list[Decision]:
        """Creating the stream failed before UBWA was involved (Binance.US: the listenKey request): `error` says what,
        `rejection` is the exchange's refusal, classified; None when it never answered (network error, timeout):
        retried with backoff like an "other" refusal."""
        if self.phase is not _Phase.CREATING:
            return []
        now = self._t(now_ms)
        self._open_gap("unrepairable")
        if rejection is not None and rejection.kind is RejectionKind.FATAL:
            self._enter(_Phase.FATAL, now)
            return [self._report(HealthState.FATAL, f"user data stream rejected: {error}", now)]
        if rejection is not None and rejection.kind is RejectionKind.THROTTLED:
            return self._throttled(rejection, error, now)
        return self._recreate(HealthState.UNREPAIRABLE, error, now)

    def on_terminated(
        self, stream_id: str | None, now_ms: int, reason: str = "eventStreamTerminated"
    ) -> list[Decision]:
        """The subscription ended (``eventStreamTerminated``; Binance.US: the listenKey expired or vanished).

        UBWA stays connected but never re-subscribes: the stream must be recreated.
        """
        if not self._current(stream_id) or self.phase in (_Phase.FATAL, _Phase.STOPPED, _Phase.BACKOFF):
            return []
        self._open_gap(reason)
        return self._recreate(HealthState.RECONNECTING, reason, self._t(now_ms))

    def on_server_shutdown(self, stream_id: str | None, now_ms: int) -> list[Decision]:
        """``serverShutdown`` arrived: the server is going away; reconnect before it does."""
        if not self._current(stream_id) or self.phase in (_Phase.FATAL, _Phase.STOPPED, _Phase.BACKOFF):
            return []
        self._open_gap("serverShutdown")
        return self._recreate(HealthState.RECONNECTING, "serverShutdown", self._t(now_ms))

    def on_probe_reply(
        self,
        stream_id: str | None,
        subscribed: bool,
        now_ms: int,
        *,
        ok: bool = True,
        status: int | None = None,
        retry_after_ms: int | None = None,
    ) -> list[Decision]:
        """A ``session.status`` reply: is the user data subscription active on this connection? `ok` False: an
        error reply — the socket answers, nothing is known of the subscription (recreating on it opened a gap just
        when REST was blocked): the next probe or the silence limit decides. A 429/418 (`status`: the WS API shares
        the IP's weight) holds the watchdog for `retry_after_ms` (``data.retryAfter``, else the throttle floor)."""
        if not self._current(stream_id) or self.phase not in (_Phase.SUBSCRIBING, _Phase.LIVE):
            return []
        now = self._t(now_ms)
        if not ok:
            return self._hold(status, retry_after_ms, now) if status in (418, 429) else []
        self._probe_sent_ms = None
        if not subscribed:
            # Connected but not subscribed: an eventStreamTerminated we never saw. Same cure.
            self._open_gap("subscription lost")
            return self._recreate(HealthState.RECONNECTING, "subscription not active", now)
        if self.phase is _Phase.SUBSCRIBING:
            return self._live(now)
        return []

    def _hold(self, status: int | None, retry_after_ms: int | None, now: int) -> list[Decision]:
        wait = self.throttle_floor_ms if retry_after_ms is None else retry_after_ms
        episode = self.hold_until_ms <= now  # a new hold (not a probe already in flight when the first was refused)
        self.hold_until_ms = max(self.hold_until_ms, now + wait)
        self._probe_sent_ms = None
        if not episode or self.health is None:
            return []
        reason = f"watchdog probe rate limited (HTTP {status}): no probe and no reconnect for {wait} ms"
        return [self._report(self.health.state, reason, now, warn=True)]

    def on_tick(self, now_ms: int, last_rx_ms: int | None) -> list[Decision]:
        """Periodic check; `last_rx_ms` is when the current stream last received anything."""
        now = self._t(now_ms)
        since = now - self.phase_since_ms
        if self.phase in (_Phase.CONNECTING, _Phase.RECONNECTING) and since >= self.reconnect_grace_ms:
            what = "could not connect" if self.phase is _Phase.CONNECTING else "UBWA could not reconnect"
            self._open_gap("disconnect")
            return self._recreate(HealthState.RECONNECTING, f"{what} within {self.reconnect_grace_ms} ms", now)
        if self.role is StreamRole.MARKET:
            quiet = now - max(last_rx_ms or 0, self.phase_since_ms)
            change = quiet_change(self.health, self.phase is _Phase.LIVE, quiet)
            return [self._report(*change, now)] if change is not None else []
        if self.phase not in (_Phase.SUBSCRIBING, _Phase.LIVE) or self.silence_ms is None or now < self.hold_until_ms:
            return []
        # Silence counts from a hold's end at the earliest: nothing could be probed before it.
        quiet = now - max(last_rx_ms or 0, self.phase_since_ms, self.hold_until_ms)
        if quiet >= self.silence_ms:
            self._open_gap("silence")
            return self._recreate(HealthState.SILENT, f"nothing received for {quiet} ms", now)
        interval = self.probe_interval_ms or 1
        if quiet >= interval and (self._probe_sent_ms is None or now - self._probe_sent_ms >= interval):
            return self._probe(now)
        return []

    def stop(self, now_ms: int) -> list[Decision]:
        """Stop for good (actor shutdown)."""
        now = self._t(now_ms)
        out: list[Decision] = [StopStream(self.stream_id)] if self.stream_id is not None else []
        self.stream_id = None
        self._enter(_Phase.STOPPED, now)
        out.append(self._report(HealthState.STOPPED, "stopped", now))
        return out
