"""The root actor: starts the tree in dependency order, supervises it, and shuts it down gracefully.

Children: event bus → persistence → gateway → one pair actor per whitelisted pair. The root also values the
account in BTC (GET /api/v3/account and ticker prices through the gateway) at start and every minute, so intake
refuses with `wallet_below_minimum` below `execution.min_wallet_btc`. A pair actor that dies is
restarted with a new ref over the same book (its orders survive), routing is updated and the pair is
reconciled; past the restart budget (`execution.restart_budget` restarts within `restart_window_s`, engine-wide)
the engine enters the safe halted state (no new orders) and the dead pair's book becomes tracking-only, run by
the root (its reports are still stored, its orders still reconciled, read-only). Graceful shutdown: stop intake
→ drain the gateway queue → cancel or keep open orders per `on_shutdown` → flush → stop in reverse.

A shell over the modules next to it: supervision and the shutdown drain (`_supervision`), reconciliation
(`_reconcile`), wallet and health (`_wallet`), settings and engine-wide state (`_state`, re-exported here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import pykka
from loguru import logger

from actors._events import EventBus
from actors._feeds import STREAM_PRICE_STALE_MS, PricePoll, PriceRouter, ReportRouter
from actors._reconcile import ReconcileMixin
from actors._recovery import RecoverySummary, best_quotes, load_state, prime_prices, restore_books, restore_outside
from actors._recovery import with_id_namespace as _with_id_namespace
from actors._state import (
    HALT_BAN,
    HALT_DATABASE,
    HALT_ORDER_LIMIT,
    HALT_RESTARTS,
    HALT_STOP_TRADING,
    EngineState,
    RootSettings,
    Routing,
    survives,
)
from actors._supervision import SupervisionMixin
from actors._ticker import Ticker
from actors._wallet import AccountBook, WalletMixin
from actors.gateway import GatewayActor, GatewayHandle
from actors.pair import PairActor
from actors.persistence import HealthReport, PersistenceHandle, PersistenceSettings, start_persistence
from actors.stream import StreamActor
from db import RecoveryState
from engine.api._lifecycle import mark_engine_thread
from engine.clock import Clock
from engine.domain import Order, Pair, pair_to_symbol
from engine.exchange import Banned, ExchangeError, OrderLimitReached, OutcomeUnknown
from engine.exchange._ratebudget import RateBudget
from engine.execution import SymbolRules
from engine.gateway import GatewayRequest, Op
from engine.pair import PairBook, order_of

__all__ = ["HALT_DATABASE", "HALT_RESTARTS", "HALT_STOP_TRADING", "EngineState", "RootActor", "RootSettings", "Routing"]

_ASK_TIMEOUT_S = 15.0
_CALL_TIMEOUT_S = 15.0  # a gateway call at start: past it, outcome unknown (the call goes on in the gateway)
_SPOOL_FULL = "database down and spool full"
_PERSISTENCE_FAILED = "the persistence actor stopped; restart the engine"


class RootActor(WalletMixin, ReconcileMixin, SupervisionMixin, pykka.ThreadingActor):
    """Supervisor of the actor tree (see module docstring)."""

    def __init__(
        self,
        settings: RootSettings,
        *,
        clock: Clock,
        ticker: Ticker,
        state: EngineState,
        routing: Routing,
        alerts: Callable[[str, str], None],
    ) -> None:
        super().__init__()
        self._s = settings
        self._clock = clock
        self._ticker = ticker
        self._state = state
        self._routing = routing
        self._alerts = alerts
        self._bus: pykka.ActorRef[EventBus] | None = None
        self._store: PersistenceHandle | None = None
        self._gateway_ref: pykka.ActorRef[GatewayActor] | None = None
        self.gateway: GatewayHandle | None = None
        self._books: dict[Pair, PairBook] = {}
        self._pairs: dict[Pair, pykka.ActorRef[PairActor]] = {}
        self._restarts = 0
        self._recent_restarts: deque[int] = deque()
        self._symbol_pairs: dict[str, Pair] = {}
        self._stream_ref: pykka.ActorRef[StreamActor] | None = None
        self._timers: dict[str, int] = {}
        """The pending handle of each repeating timer, by name (replaced as it re-arms, so it never grows)."""
        self._poll_needed = True
        """REST price polling runs while no market stream feeds bookTicker (read on the ticker's thread)."""
        self._price_router: PriceRouter | None = None  # the market stream's, once it is started
        self._stale_polled_ms = 0  # the last poll for the pairs a connected market stream leaves unpriced
        self._timers_stopped = False
        self._timer_lock = threading.Lock()
        """Held while a timer acts or re-arms, and by shutdown to stop them: none acts or re-arms after that."""
        self._stopping = False
        """Set by `shutdown` (root thread only): timer messages already queued behind it do nothing."""
        self._halt_ends: dict[str, int] = {}  # a timed halt's end by cause (a 418 ban's), lifted by `ban_over`
        self._held: dict[Pair, deque[Any]] = {}
        """Execution reports for a pair whose actor is dead, in arrival order, until it is restarted."""
        self._held_overflow: set[Pair] = set()
        self._deferred_rounds: dict[str, list[Pair]] = {}
        self._dead_logged: set[str] = set()
        self._self: Any = None
        self._publish: Callable[[Any], None] = lambda _event: None
        self._stream_health: dict[str, Any] = {}
        self._db_health: HealthReport | None = None
        self._balances = AccountBook()
        self._recovery: RecoverySummary | None = None
        self._specs: dict[str, dict[str, Any]] = {}
        self._outside: dict[Pair, PairBook] = {}
        """Tracking-only books the root runs: pairs outside the whitelist, and pairs halted past the budget."""
        self._outside_own: dict[Pair, frozenset[str]] = {}
        """Per pair outside the whitelist, the engine's own orders restored at start (`restore_outside`): the only
        ones there the root looks up, reconciles, lists and counts."""

    # ---- start ----------------------------------------------------------------------------------------
    def on_start(self) -> None:
        mark_engine_thread()
        try:
            self._start_children()
        except BaseException:
            # pykka calls neither `on_stop` nor `on_failure` when `on_start` fails: the children started so far
            # would outlive the root (and keep the process alive). Stop them here; pykka logs the error.
            logger.error("engine start failed: stopping the actors started so far")
            self._stop_children()
            raise

    def _start_children(self) -> None:
        self._self = self.actor_ref.proxy()
        self._bus = EventBus.start()
        # The sender-side publisher (it tells the bus only while someone listens); the ask is the ping barrier.
        self._publish = self._bus.proxy().publisher().get(timeout=_ASK_TIMEOUT_S)
        for listener in self._s.listeners:  # before recovery, so they hear what it does
            self._bus.proxy().subscribe(listener).get(timeout=_ASK_TIMEOUT_S)
        db = self._s.config.database
        self._store = start_persistence(
            self._s.database_url,
            self._s.spool_path,
            listener=self._self.on_persistence_health.defer,
            settings=PersistenceSettings(
                batch_size=db.batch_size, spool_limit_bytes=db.spool_max_bytes, memory_limit=db.buffer_max_rows
            ),
            clock=self._clock,
        )
        budget = RateBudget()
        self._gateway_ref = GatewayActor.start(
            self._s.gateway, clock=self._clock, budget=budget, on_critical=self._self.on_critical.defer
        )
        self.gateway = self._gateway_ref.proxy().handle().get(timeout=_ASK_TIMEOUT_S)
        info = self._call(Op.EXCHANGE_INFO)
        limits = RateBudget.limits_from_exchange_info(info.get("rateLimits") or [])
        if limits:
            self.gateway.set_limits(limits)
        symbols = {str(s["symbol"]): s for s in info.get("symbols", ())}
        self._specs = symbols
        self._symbol_pairs = {
            name: Pair(f"{s['baseAsset']}/{s['quoteAsset']}")
            for name, s in symbols.items()
            if s.get("baseAsset") and s.get("quoteAsset")
        }
        self._s = dataclasses.replace(self._s, pair_settings=_with_id_namespace(self._store, self._s.pair_settings))
        for pair in self._s.config.exchange.pair_whitelist:
            if (spec := symbols.get(pair_to_symbol(pair))) is None:
                raise RuntimeError(f"{pair} is not listed by the exchange")
            rules = SymbolRules.from_exchange_info(spec)
            self._books[Pair(pair)] = PairBook(Pair(pair), rules, self._s.pair_settings, risk=self._s.risk_manager)
        self._recover()
        for pair in self._books:
            self._start_pair(pair)
        self._value_wallet_now()
        self._start_stream()
        self._poll_prices()
        self._scan_open_orders()
        self._every("reconcile", self._s.reconcile_interval_ms, lambda: self._self.reconcile.defer("periodic"))
        self._every("reconcile-unhealthy", self._s.unhealthy_reconcile_ms, self._self.reconcile_if_unhealthy.defer)
        self._every("persistence-tick", self._s.config.database.batch_interval_ms, self._store.tick)
        self._every("wallet", self._s.wallet_refresh_ms, self._self.refresh_wallet.defer)
        self._every("api-errors", 60_000, self._self.check_api_errors.defer)
        logger.info("engine started: {} pairs, exchange {}", len(self._pairs), self._s.gateway.rest_base or "venue")

    def _recover(self) -> None:
        # Before any pair actor runs: prices first (resumed plans and early market orders need a reference),
        # then the database's unfinished requests, live orders and used idempotency keys.
        assert self._store is not None
        try:
            primed = prime_prices(self._call(Op.BOOK_TICKER, weight=4), self._books, self._clock.now_ms())
            logger.debug("prices known for {} of {} pairs at start", primed, len(self._books))
        except ExchangeError as exc:
            logger.warning("no prices at start ({}); the first price update will bring them", exc)
        state = load_state(self._store)
        self._recovery = restore_books(self._store, self._books, state, self._clock.now_ms())
        self._restore_outside(state)

    def _outside_book(self, pair: Pair) -> PairBook | None:
        """A book for a pair outside the whitelist (crash recovery's `restore_outside`); None when the exchange
        does not list it."""
        spec = self._specs.get(pair_to_symbol(pair))
        return None if spec is None else PairBook(pair, SymbolRules.from_exchange_info(spec), self._s.pair_settings)

    def _restore_outside(self, state: RecoveryState) -> None:
        """At start: the unfinished work of pairs no longer whitelisted goes to tracking-only books here, and
        their orders are looked up as a pair actor's would be."""
        books, untracked = restore_outside(state, self._books, self._outside_book, self._clock.now_ms())
        for pair, (book, own) in books.items():
            self._outside[pair] = book
            self._outside_own[pair] = own
            try:
                self._carry_out(book, book.resume(self._clock.now_ms()))
            except Exception:  # noqa: BLE001 - one pair's trouble must not stop the engine from starting
                logger.bind(pair=pair).exception("resuming the tracked orders of a pair outside the whitelist failed")
                untracked.append(pair)
        if untracked:
            names = ", ".join(untracked)
            self._alerts("orders_untracked", f"unfinished orders of pairs outside the whitelist that cannot be "
                                             f"tracked: {names}")  # fmt: skip

    def _start_stream(self) -> None:
        if self._s.stream is None:
            return
        assert self._store is not None
        routes = self._routing.get
        # The pairs the stream subscribes: the whitelist (every symbol the exchange lists would read as unfed).
        fed = {symbol: pair for symbol, pair in self._symbol_pairs.items() if pair in self._books}
        self._price_router = PriceRouter(routes, fed, self._clock)
        self._stream_ref = StreamActor.start(
            self._s.stream,
            clock=self._clock,
            ticker=self._ticker,
            on_report=ReportRouter(
                routes,
                self._symbol_pairs,
                self._self.on_unrouted.defer,
                handoff_pause_s=self._s.stream.report_handoff_pause_us / 1e6,
            ),
            on_price=self._price_router,
            on_health=self._self.on_stream_health.defer,
            on_gap=self._self.on_stream_gap.defer,
            on_error=self._store.save,
        )

    def _call(self, op: Op, params: dict[str, str] | None = None, weight: int | None = None) -> Any:
        assert self.gateway is not None
        try:
            result = self.gateway.call(GatewayRequest(op, params or {}, weight=weight)).result(_CALL_TIMEOUT_S)
        except TimeoutError:
            # An exchange error like any other to the callers (a missing wallet value refuses orders; missing
            # prices come with the first update), not a failed start.
            raise OutcomeUnknown(f"{op.value} not answered within {_CALL_TIMEOUT_S} s", operation=op.value) from None
        if result.error is not None:
            raise result.error
        return result.data

    def _every(self, name: str, interval_ms: int, action: Callable[[], None]) -> None:
        # `fire` runs on the ticker's thread: it only tells (or submits) and re-arms. Both happen under the
        # lock `shutdown` takes to stop the timers, so after that no timer acts nor comes back.
        def fire(_now: int) -> None:
            with self._timer_lock:
                if self._timers_stopped:
                    return
                try:
                    action()
                finally:
                    self._timers[name] = self._ticker.call_later(interval_ms, fire)

        with self._timer_lock:
            if not self._timers_stopped:
                self._timers[name] = self._ticker.call_later(interval_ms, fire)

    def _poll_prices(self) -> None:
        # Poll all pairs every second whenever the market stream does not feed bookTicker: none configured, not
        # connected yet, or down. Frozen prices would let the slippage guard and the risk valuation pass on a stale
        # book. One poll at a time (`PricePoll`).
        assert self.gateway is not None
        poll = PricePoll(self.gateway.submit, self._self.on_prices.defer, self._poll_due, self._clock.now_ms)
        self._every("prices", self._s.price_poll_ms, poll)

    # ---- messages -----------------------------------------------------------------------------------
    @survives
    def on_prices(self, data: Any, sent_ms: int | None = None) -> None:
        """Latest best bid/ask of every symbol (list of bookTicker objects), asked for at `sent_ms`."""
        if self._stopping:  # a poll answer that arrives after the drain moves nothing
            return
        unfed = self._unfed_pairs()  # a pair the stream feeds keeps its streamed price
        router = self._price_router
        for pair, (bid, ask) in best_quotes(data, self._pairs).items():
            # Nor one the stream priced after the poll left: this answer is older (it put back the price of a book
            # that had moved, as the stream came back from quiet).
            if pair in unfed and (router is None or sent_ms is None or not router.priced_since(pair, sent_ms)):
                self._tell_pair(pair, "on_price", bid, ask)

    def _unfed_pairs(self) -> frozenset[Pair]:
        """The pairs no market stream prices now: all of them while it is not connected (or none is configured),
        else those it has left unpriced for a while (`PriceRouter.stale`)."""
        if self._poll_needed or self._price_router is None:
            return frozenset(self._pairs) if self._poll_needed else frozenset()
        return self._price_router.stale()

    def _poll_due(self) -> bool:
        # Ticker thread. Every second while the stream is not connected; while it is, once per stale period for the
        # pairs it leaves unpriced (a resting book is priced alike: an all-symbol poll a second cost 240 weight/min).
        if self._poll_needed:
            return True
        now = self._clock.now_ms()
        if now - self._stale_polled_ms < STREAM_PRICE_STALE_MS or not self._unfed_pairs():
            return False
        self._stale_polled_ms = now
        return True

    @survives
    def on_stream_health(self, health: Any) -> None:
        """A stream's health changed."""
        self._stream_health[str(getattr(health, "stream", "stream"))] = health
        logger.debug("stream health: {}", health)  # the stream actor logged it (INFO, in words)
        if str(getattr(health, "stream", "")) == "market":
            self._poll_needed = str(getattr(health, "state", "")) != "connected"
            if not self._poll_needed and self._price_router is not None:
                self._price_router.connected()
        if str(getattr(health, "state", "")) in ("unrepairable", "fatal"):
            # Fills now come only from reconciliation (every few seconds while a stream is down).
            self._alerts("stream", f"{health.stream} stream {health.state}: {health.reason}")

    @survives
    def on_critical(self, error: ExchangeError) -> None:
        """A stop-trading error: halt new orders and alert. A 418 ban with a known end halts until that end (the
        gateway holds every request until then anyway), as do order limits holding creates past the gateway's
        `max_create_hold` (`OrderLimitReached`); anything else (auth failure) until the engine restarts."""
        try:
            if isinstance(error, OrderLimitReached):
                self._halt_until(HALT_ORDER_LIMIT, error.until_ms, f"{error} (until then)")
                return
            if isinstance(error, Banned) and (error.retry_after_s is not None or error.banned_until_ms is not None):
                # Retry-After, else the body's "banned until" (server time: within the clock offset of ours).
                after_ms = None if error.retry_after_s is None else int(error.retry_after_s * 1000)
                until = self._clock.now_ms() + after_ms if after_ms is not None else int(error.banned_until_ms or 0)
                halted = self._halt_until(HALT_BAN, until, f"{type(error).__name__}: {error} (until the ban ends)")
                if halted and self._stream_ref is not None:  # its handshakes would be refused too: they wait
                    with contextlib.suppress(pykka.ActorDeadError):
                        self._stream_ref.proxy().hold_for_ban.defer(until)
                return
            self._state.halt(HALT_STOP_TRADING, f"{type(error).__name__}: {error}")
        except Exception:
            # Whatever failed on the way (a ban's end, its timer), new orders stop: halted until the engine restarts.
            self._state.halt(HALT_STOP_TRADING, f"{type(error).__name__}: {error}")
            raise
        finally:  # last: a failing alert sink must not skip the halt
            self._alerts("order_limit" if isinstance(error, OrderLimitReached) else "stop_trading", str(error))

    def _halt_until(self, cause: str, until: int, reason: str) -> bool:
        """Halt new orders for `cause` until `until` (engine clock), lifted then by `ban_over`; False if a halt of
        that cause already lasts as long."""
        if until <= self._halt_ends.get(cause, 0):
            return False
        self._halt_ends[cause] = until
        self._state.halt(cause, reason)
        proxy = self._self

        def over(_now: int) -> None:
            with contextlib.suppress(pykka.ActorDeadError):  # the engine stopped meanwhile
                proxy.ban_over.defer(until, cause)

        self._ticker.call_at(until, over)
        return True

    @survives
    def ban_over(self, until_ms: int, cause: str = HALT_BAN) -> None:
        """The halt of `cause` (an IP ban, an order-limit hold) that was to end at `until_ms` is over (unless a later
        one extended it): new orders resume."""
        if until_ms == self._halt_ends.get(cause, 0) and cause in self._state.halt_causes():
            ctx = self._state.lift(cause)
            what = "IP ban" if cause == HALT_BAN else "order limit hold"
            state = "still halted: " + ctx.halt_reason if ctx.halted else "resume"
            logger.warning("{} over: new orders {}", what, state)

    @survives
    def on_persistence_health(self, report: HealthReport) -> None:
        """Database health changed; past the spool limit no new orders are taken."""
        self._db_health = report
        level = "INFO" if str(getattr(report, "health", "")).endswith("ok") else "WARNING"
        logger.log(level, "persistence health: {}", report)
        if str(getattr(report, "health", "")).endswith("spool_full"):
            self._state.halt(HALT_DATABASE, _SPOOL_FULL)
            self._alerts("database", "spool full: new orders halted")
        elif str(getattr(report, "health", "")).endswith("failed"):
            self._state.halt(HALT_DATABASE, _PERSISTENCE_FAILED)
            self._alerts("database", f"persistence stopped, nothing more is stored; new orders halted: {report.reason}")
        elif str(getattr(report, "health", "")).endswith("degraded"):
            self._alerts("database", f"database unavailable, writes spooled to disk: {report.reason}")
        elif str(getattr(report, "health", "")).endswith("ok") and HALT_DATABASE in self._state.halt_causes():
            # Only the database's own cause: a ban or an exhausted restart budget stays halted.
            ctx = self._state.lift(HALT_DATABASE)
            if ctx.halted:
                logger.warning("database back and spool drained; still halted: {}", ctx.halt_reason)
            else:
                logger.warning("database back and spool drained: new orders accepted again")

    def pair_refs(self) -> dict[Pair, Any]:
        """Current pair actor proxies (a pair whose actor just died is missing until it is restarted)."""
        return {pair: ref.proxy() for pair, ref in self._pairs.items() if ref.is_alive()}

    def tracked_open_orders(self, pair: Pair) -> list[Order]:
        """Open orders of a pair whose book the root tracks (halted past the restart budget: what its dead actor
        can no longer answer; or outside the whitelist); empty for any other pair."""
        book = self._outside.get(pair)
        return [order_of(leg) for leg in self._tracked_legs(book)] if book is not None else []

    def outside_pairs(self) -> list[Pair]:
        """Pairs outside the whitelist where the root tracks the engine's own orders (see `_reconcile`)."""
        return [pair for pair in self._outside_own if pair not in self._books]

    def store(self) -> PersistenceHandle | None:
        """The persistence handle (queries)."""
        return self._store

    def bus(self) -> Any:
        """The event bus proxy."""
        return self._bus.proxy() if self._bus is not None else None

    def stream(self) -> Any:
        """The stream actor's proxy (None before it starts or without streams)."""
        return self._stream_ref.proxy() if self._stream_ref is not None and self._stream_ref.is_alive() else None

    # ---- stop ---------------------------------------------------------------------------------------
    def on_stop(self) -> None:
        self._stop_children()
        logger.info("engine stopped")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        # A told message outside `survives` raised, and pykka stops the root: its children would outlive it (no
        # supervisor, `Engine.stop` unable to reach them, the process kept alive). They are stopped here, the
        # database flushed first.
        self._alerts("root_error", f"the root actor died ({exception_value!r}): the engine's actors are stopped")
        self._stop_children()
