"""The root's supervision of the pair actors: starting and restarting them over their books, reaching them
safely, the restart budget, and the shutdown drain (stop the timers and the stream, cancel or keep open
orders, wait for the gateway queue), then stopping the children in reverse, persistence flushed (`_stop_children`:
the root's `on_stop`, and its `on_failure` should it die). A mixin of `RootActor` (its messages run on the root's
thread).

The restart budget is a sliding window of engine time (OTP's intensity/period): at most `restart_budget`
restarts within `restart_window_ms`, engine-wide; one crash more halts. A restarted actor whose start fails
(its book cannot be restated) reports a crash like any other; `budget` failed starts in a row halt whatever the
window. Every restart is followed by a reconciliation round over the restarted pair: a tell that raced the
crash is lost, what it carried is not.

A dead pair actor never takes the root with it: every root path reaches a pair through `_with_pair`, which
skips a dead actor (crashed and not yet restarted, or past the budget); a restarted actor already dead when
the root routes to it is left for its own crash report. Execution reports the stream could not hand to a dead
actor come here (`on_unrouted`) and are held until its restart, then delivered in order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import pykka
from loguru import logger

from actors._pair_home import _Home, answer_at_stop, engine_stopping, start_failures
from actors._state import HALT_RESTARTS, EngineState, RootSettings, Routing, survives
from actors._ticker import Ticker
from actors.pair import PairActor, release_callers
from engine.clock import Clock
from engine.domain import Pair
from engine.pair import PairBook, ShutdownTally

__all__ = ["SupervisionMixin"]

_ASK_TIMEOUT_S = 15.0

_T = TypeVar("_T")


class SupervisionMixin:
    """Pair actor supervision and the shutdown drain (see module docstring)."""

    gateway: Any
    _s: RootSettings
    _clock: Clock
    _ticker: Ticker
    _state: EngineState
    _routing: Routing
    _alerts: Callable[[str, str], None]
    _store: Any
    _bus: Any
    _gateway_ref: Any
    _self: Any
    _publish: Callable[[Any], None]
    _books: dict[Pair, PairBook]
    _pairs: dict[Pair, Any]
    _outside: dict[Pair, PairBook]
    cancel_tracked_for_shutdown: Callable[[float], None]
    _tracked_tally: Callable[[], ShutdownTally]
    _restarts: int
    """Restarts since the engine started (health, metrics)."""
    _recent_restarts: deque[int]
    """When (engine time) the restarts within the budget's window were made, oldest first."""
    _held: dict[Pair, deque[Any]]
    _held_overflow: set[Pair]
    _told_held: bool = False
    """The stop said once that a Retry-After holds what is queued beyond its waits."""
    _dead_logged: set[str]
    _stream_ref: Any
    _stream_not_stopped: bool = False
    """The stream actor's stop timed out (or failed): it may still run."""
    _timers: dict[str, int]
    _timers_stopped: bool
    _timer_lock: threading.Lock
    _stopping: bool

    _deliver_report: Callable[[Pair, Any], None]
    """Hand a report to a pair's actor, or hold it (the root's reconciliation mixin)."""
    _track_only: Callable[[Pair], None]
    """Make a pair's book tracking-only, run by the root (the root's reconciliation mixin)."""
    reconcile_pair: Callable[[Pair, str], int]
    """A reconciliation round over one pair (the root's reconciliation mixin)."""

    # ---- pair actors --------------------------------------------------------------------------------
    def _start_pair(self, pair: Pair) -> None:
        """Start an actor over `pair`'s book and route to it. Raises only if it could not be started at all."""
        assert self._store is not None and self.gateway is not None and self._bus is not None
        try:
            ref = PairActor.start(
                self._books[pair],
                gateway=self.gateway,
                store=self._store,
                ticker=self._ticker,
                clock=self._clock,
                events=self._publish,
                alerts=self._alerts,
                intake=self._state.intake,
                on_crash=self._self.child_failed.defer,
            )
        except Exception:
            # No thread runs it (`start` raised: its thread never started), but it may hold what was parked for
            # it (handed over at `attach`): parked again, for whoever answers or takes them (`_give_up`).
            _Home.of(self._books[pair]).abandon()
            raise
        self._pairs[pair] = ref
        # The reports held while it was dead go first: routing still points at the dead actor, so none
        # routed by the stream can overtake them.
        for report in self._held.pop(pair, deque()):
            self._deliver_report(pair, report)
        try:
            proxy = ref.proxy()
        except pykka.ActorDeadError:
            # Its start failed already: its crash report is queued behind this message (`child_failed` again).
            # Routing keeps the dead predecessor: reports still come here and are held (`_deliver_report` held
            # those above again).
            logger.bind(pair=pair).error("pair actor died as it started")
            return
        # The home first: a reader that sees the new route finds it (it is the same object across restarts).
        self._routing.homes = {**self._routing.homes, pair: _Home.of(self._books[pair])}
        self._routing.routes = {**self._routing.routes, pair: proxy}
        if pair in self._held_overflow:
            # The reports past the bound are the exchange's: the round that follows every restart finds them.
            self._held_overflow.discard(pair)
            logger.bind(pair=pair).warning("reports were dropped while the pair actor was dead; reconciling")

    def _with_pair(self, pair: Pair, what: str, use: Callable[[Any], _T], default: _T) -> _T:
        """`use(proxy)` on `pair`'s actor: the one way every root path reaches a pair actor.

        A dead actor (crashed and not yet restarted, or past the restart budget) is skipped and logged once;
        a call that fails or times out is logged. Either way the answer is `default`: the supervisor never
        dies of a child, and one pair's trouble never stops a round over the others.
        """
        ref = self._pairs.get(pair)
        if ref is None:
            return default
        try:
            return use(ref.proxy())
        except pykka.ActorDeadError:
            if ref.actor_urn not in self._dead_logged:
                self._dead_logged.add(ref.actor_urn)
                logger.bind(pair=pair).warning(
                    "pair actor is dead (restarting, or past the restart budget): {} skipped", what
                )
        except pykka.Timeout:
            logger.bind(pair=pair).error("pair actor did not answer {} within {} s", what, _ASK_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - a child's failure is not the supervisor's
            logger.bind(pair=pair).exception("pair actor failed on {}", what)
        return default

    def _tell_pair(self, pair: Pair, method: str, *args: Any) -> bool:
        """Tell `pair`'s actor `method(*args)` (through `_with_pair`); False when it could not be reached."""

        def told(proxy: Any) -> bool:
            getattr(proxy, method).defer(*args)
            return True

        return self._with_pair(pair, method, told, False)

    def _live_pairs(self) -> list[Pair]:
        """The whitelisted pairs the root does not track itself (their actor alive or being restarted)."""
        return [pair for pair in self._pairs if pair not in self._outside]

    @survives
    def child_failed(self, pair: Pair) -> None:
        """A pair actor died: restart it over the same book, or halt past the restart budget.

        Past the budget (or during shutdown) the pair is not restarted: its book becomes tracking-only, run
        by the root, so the reports held for it and those still to come are stored. Its dead actor stays in
        routing: callers reaching it meet a dead actor (the engine answers `halted`), not an unknown pair.
        A book no actor can start (`start_failures`) is given up on after `budget` failed starts in a row, even
        when its restarts are spread out past the window: a restart of it would fail the same way.
        """
        if self._stopping:
            logger.bind(pair=pair).warning("pair actor died during shutdown; its reports are tracked only")
            self._give_up(pair, "the pair actor died during shutdown")
            return
        budget, window_ms = self._s.restart_limits()
        failed_starts = start_failures(self._books[pair])
        if failed_starts >= budget or not self._restart_allowed(budget, window_ms):
            ctx = self._state.halt(HALT_RESTARTS, "restart budget exhausted")
            if failed_starts:
                logger.bind(pair=pair).error("pair actor failed to start {} time(s) in a row", failed_starts)
            # Nobody will answer its callers now: they hear at once, not after the orphan grace period.
            self._give_up(pair, ctx.halt_reason)
            self._alerts("restart_budget", f"pair actor {pair} died; halted ({ctx.halt_reason})")
            return
        logger.bind(pair=pair).error("pair actor died; restarting ({}/{} within {} s)", len(self._recent_restarts),
                                     budget, window_ms / 1000)  # fmt: skip
        try:
            self._start_pair(pair)
        except Exception:  # noqa: BLE001 - no actor runs the book, and none will report a crash: give up on it
            logger.bind(pair=pair).exception("the pair actor could not be restarted")
            ctx = self._state.halt(HALT_RESTARTS, "a pair actor could not be restarted")
            self._give_up(pair, ctx.halt_reason)
            self._alerts("restart_budget", f"pair actor {pair} could not be restarted; halted ({ctx.halt_reason})")
            return
        # A tell that raced the crash (the sender saw the actor alive, its message landed after `on_failure`
        # took the inbox) is dropped by pykka: a stream report, a gateway answer told to the dead proxy, a
        # price. What it carried is at the exchange: look this pair's orders up now, not at the next round.
        try:
            self.reconcile_pair(pair, f"pair actor {pair} restarted")
        except Exception:  # noqa: BLE001 - the periodic round asks the same questions; the root must live on
            logger.bind(pair=pair).exception("the reconciliation after the restart failed")

    def _give_up(self, pair: Pair, reason: str) -> None:
        """No actor will run `pair`'s book again: the root tracks it, and its callers are answered now (a
        caller's cancel the tracking-only book did not take too: `_track_only` failed before it took them)."""
        try:
            self._track_only(pair)
        except Exception:  # noqa: BLE001 - a book that fails even as tracking-only must not take the root with it
            logger.bind(pair=pair).exception("the tracking-only book of {} failed to take over", pair)
            self._alerts("orders_untracked", f"{pair}: its orders are no longer tracked ({reason})")
        release_callers(self._books[pair], reason)

    def _restart_allowed(self, budget: int, window_ms: int) -> bool:
        """Count one restart now, unless `budget` restarts were made within the last `window_ms` (engine time).

        A sliding window, like OTP's supervisor intensity/period: a crash a week never halts a daemon, a crash
        loop does. Engine-wide, not per pair (as the lifetime count it replaces): the halt it leads to is
        engine-wide, and one fault that kills every pair (a library bug, a bad message shape) is one reason to
        stop, not one budget per pair to spend first.
        """
        now = self._clock.now_ms()
        recent = self._recent_restarts
        while recent and recent[0] <= now - window_ms:
            recent.popleft()
        if len(recent) >= budget:
            return False
        recent.append(now)
        self._restarts += 1
        return True

    # ---- shutdown -----------------------------------------------------------------------------------
    def shutdown(self, cancel_open: bool) -> dict[str, int]:
        """Stop intake, cancel (or keep) open orders, flush and stop the children in reverse order.

        Returns the summary of `Engine.stop`, every order counted once, as the exchange's answers left it:
        `canceled` (orders whose cancel the exchange confirmed) and `open` (not terminal: kept, or their cancel
        not confirmed — failed, unanswered, or the order gone from REST); when not 0, `ended_otherwise` (orders
        the shutdown canceled that ended another way: filled meanwhile, expired), `withdrawn` (requests ended with
        no order to cancel: queued, or between orders) and `unanswered` (pairs whose actor did not answer).
        """
        self._state.update(shutting_down=True)
        self._stopping = True
        if self.gateway is not None:  # nothing new leaves once stop is called: queued creates are withdrawn
            try:
                self.gateway.close_creates()
            except RuntimeError as exc:  # its loop already gone: nothing can leave anyway
                logger.warning("gateway: creates not closed at the stop ({})", exc)
        for book in self._books.values():
            engine_stopping(book)  # a caller's cancel no pair actor carries out from now on hears `shutting_down`
        self._stop_timers()
        self._stop_stream()
        # When the waits below are over at the latest: a Retry-After that lasts longer holds the queue past the stop.
        waits_end_ms = self._clock.now_ms() + int(_ASK_TIMEOUT_S * 1000) * (2 if cancel_open else 1)
        if cancel_open:
            # A dead pair is skipped (`_with_pair`): the live ones are still canceled. Asked, not counted here: a
            # cancel asked for is not a cancel done (the answers are counted below).
            for pair in self._live_pairs():
                self._with_pair(pair, "cancel_all", lambda proxy: proxy.cancel_all().get(timeout=_ASK_TIMEOUT_S), None)
            # The halted pairs' too: the root runs their books (an order must not rest until someone notices).
            self.cancel_tracked_for_shutdown(_ASK_TIMEOUT_S)
            # The answers to its own cancels: an order it did not cancel (external) stays open, not waited for.
            self._wait_until(
                lambda: self._held_past(waits_end_ms) or self._pair_tally()[0].canceling == 0, _ASK_TIMEOUT_S
            )
        self._wait_until(lambda: self._gateway_idle() or self._held_past(waits_end_ms), _ASK_TIMEOUT_S)
        tally, unanswered = self._pair_tally()
        tally += self._tracked_tally()
        summary = tally.summary()
        if opened := [cid for cid in tally.left_open if cid not in tally.unknown]:
            logger.warning("left open at the exchange: {}", ", ".join(opened))
        if tally.unknown:
            logger.warning("outcome unknown (sent, never answered; the next start looks them up): {}",
                           ", ".join(tally.unknown))  # fmt: skip
        if unanswered:
            # Their open orders are unknown here: "open: 0" would say nothing was left when something may be.
            summary["unanswered"] = unanswered
        return summary

    def _pair_tally(self) -> tuple[ShutdownTally, int]:
        """The orders of the pairs whose actor answers, as the shutdown leaves them (each pair's counts taken at
        once, so an answer arriving between two asks cannot count an order twice), and how many pairs did not
        answer (dead, or stuck past the ask's timeout)."""

        def ask(proxy: Any) -> ShutdownTally:
            tally: ShutdownTally = proxy.shutdown_tally().get(timeout=_ASK_TIMEOUT_S)
            return tally

        tallies = [self._with_pair(pair, "shutdown_tally", ask, None) for pair in self._live_pairs()]
        return sum((t for t in tallies if t is not None), ShutdownTally()), sum(t is None for t in tallies)

    def _gateway_idle(self) -> bool:
        if self.gateway is None:
            return True
        stats = self.gateway.stats()
        return stats.queued == 0 and stats.in_flight == 0

    def _held_past(self, waits_end_ms: int) -> bool:
        """Nothing under way and every request held by the exchange's Retry-After beyond `waits_end_ms`, when the
        stop's waits are over: what is queued (cancels included) cannot leave before the stop ends, so it does not
        wait for it (a stop that was not graceful took 15 s, a graceful one 30 s, and said nothing). A shorter hold
        is waited out: its cancels leave before the stop ends."""
        if self.gateway is None:
            return False
        stats = self.gateway.stats()
        until = stats.blocked_until_ms
        if stats.in_flight or until <= waits_end_ms:
            return False
        if not self._told_held:
            self._told_held = True
            left_s = (until - self._clock.now_ms()) // 1000
            logger.warning("stopping during the exchange's Retry-After ({} s left): queued requests (cancels "
                           "included) cannot leave, not waited for", left_s)  # fmt: skip
        return True

    @staticmethod
    def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
        # Shutdown only: results arrive at other actors, so waiting here cannot block them. Bounded in elapsed
        # time, not in rounds: a condition that asks a stuck pair (15 s each) would stretch rounds without end.
        deadline = time.monotonic() + timeout_s
        pause = threading.Event()
        while not condition():
            if time.monotonic() >= deadline:
                return False
            pause.wait(0.02)
        return True

    def _stop_timers(self) -> None:
        """Stop the root's repeating timers: none acts or re-arms after this (see `RootActor._every`)."""
        with self._timer_lock:
            self._timers_stopped = True
            handles = list(self._timers.values())
        for handle in handles:
            self._ticker.cancel(handle)

    def _stop_stream(self) -> None:
        # Stopped while the root still runs: the stream's last health report must find it alive.
        if self._stream_ref is not None and self._stream_ref.is_alive():
            try:
                self._stream_ref.stop(timeout=_ASK_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - a stream that will not stop must not keep the rest running
                logger.exception("stopping the stream actor failed; the other actors are stopped all the same")
                self._stream_not_stopped = True  # `_stop_children` (later, maybe) must not count it stopped
        self._stream_ref = None

    def _stop_children(self) -> None:
        """The children in reverse order of their start (any not started yet, or already dead, is skipped).

        A child that fails to stop (a `Timeout`: it is stuck in a message) is logged and left: the others are
        still stopped, and persistence still flushes what it holds, then stops. `children_stopped` (what lets
        `Engine.stop` release the database lock) is set only when every child stopped, and the final flush
        answered, within their timeouts: a child still running may still write.

        The timers go first: on the way out of a failed start or of a root that died (`on_failure`), nothing
        else stops them, and they would tell the dead root (an `ActorDeadError` each) as long as the ticker runs.
        """
        try:
            self._stop_children_in_turn()
        finally:
            self._state.children_stop_over.set()

    def _stop_children_in_turn(self) -> None:
        self._stop_timers()
        self._stop_stream()
        not_stopped = ["stream actor"] if self._stream_not_stopped else []
        for pair, ref in self._pairs.items():
            not_stopped += _stop_guarded(f"pair actor {pair}", ref.stop)
        self._answer_left_callers()
        if self._gateway_ref is not None:
            not_stopped += _stop_guarded("gateway", self._gateway_ref.stop)
        if self._store is not None:
            try:
                self._store.flush().get(timeout=_ASK_TIMEOUT_S)
            except pykka.Timeout:
                logger.error("final flush not answered in time: persistence may still be writing")
                not_stopped.append("persistence actor (final flush)")
            except Exception as exc:  # noqa: BLE001 - reported; stopping continues (the spool has the rest)
                # It answered: the flush failed (the disk full, the database gone). The actor stops below as the
                # others do; counting it as still running kept the database lock until the process ended.
                logger.error("final flush failed: {!r}", exc)
            not_stopped += _stop_guarded("persistence actor", self._store.stop)
        if self._bus is not None:
            not_stopped += _stop_guarded("event bus", self._bus.stop)
        if not_stopped:
            logger.error("{} did not stop within the timeout: the database lock is kept while they may still run",
                         ", ".join(not_stopped))  # fmt: skip
            return
        self._state.children_stopped.set()

    def _answer_left_callers(self) -> None:
        """Once the pair actors are stopped: callers of a book no actor runs would wait forever (a crashed actor
        whose crash report is left behind the root's stop: never restarted nor given up on, and its orphan grace
        dies with the ticker). They are answered now (`answer_at_stop`); a live actor answered its own."""
        for pair, book in self._books.items():
            try:
                answered = answer_at_stop(book)
            except Exception:  # noqa: BLE001 - one book must not keep the others' callers, or the stop, waiting
                logger.bind(pair=pair).exception("answering the callers left on the stopped pair failed")
                continue
            if answered:
                logger.bind(pair=pair).warning("{} caller(s) left on the stopped pair answered", answered)


def _stop_guarded(what: str, stop: Callable[..., object]) -> list[str]:
    """Stop one child; `[what]` when it did not stop (it timed out, or failed), else `[]`."""
    try:
        stop(timeout=_ASK_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - one child that will not stop must not keep the others running
        logger.exception("stopping the {} failed; the other actors are stopped all the same", what)
        return [what]
    return []
