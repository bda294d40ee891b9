"""The Engine: what callers hold. Plain Python — no pykka knowledge needed.

```python
engine = Engine.start()                      # embedded simulator, dry run, SQLite
outcome = engine.place_order("BTC/USDT", "buy", "0.01", "60000").result(timeout=10)
if outcome.accepted: ...
engine.stop()
```
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pykka
from loguru import logger

from engine.api._alerting import log_alert
from engine.api._cancels import CancelThread, EngineCancels
from engine.api._checks import StartupChecksFailed, require_startup_checks
from engine.api._lifecycle import ended_with_simulator, engine_stopped, refuse_on_engine_thread, stop_at_exit
from engine.api._queries import EngineQueries, pair_arg
from engine.api._replays import EngineReplays
from engine.api._requests import EngineRequests, running
from engine.api._types import EngineListener
from engine.clock import Clock, SystemClock
from engine.config import Config, ExchangeName
from engine.domain import Order, Pair
from engine.logs import add_secrets

if TYPE_CHECKING:
    from actors._ticker import Ticker
    from actors.root import EngineState, Routing
    from db import InstanceLock
    from engine.execution import RiskManager

__all__ = ["Engine", "StartupChecksFailed"]

_ASK_TIMEOUT_S = 15.0
_STOP_WAIT_S = 180.0  # a second stop() waits this long for the first (its shutdown asks are bounded by 120 s)
_START_WAIT_S = 120.0  # the start barrier: the root's recovery asks are bounded by 60 s each
_UNSTART_WAIT_S = 120.0  # after a start given up on, how long the root may take to finish starting, then stop


class Engine(EngineRequests, EngineReplays, EngineCancels, EngineQueries):
    """A running execution engine (start it with `Engine.start`)."""

    def __init__(
        self,
        *,
        root: Any,
        routing: Routing,
        state: EngineState,
        ticker: Ticker,
        clock: Clock,
        config: Config,
        sim: Any = None,
        owns_sim: bool = False,
        db_lock: InstanceLock | None = None,
    ) -> None:
        self._root = root
        self._db_lock = db_lock
        self._whitelist = tuple(dict.fromkeys(Pair(p) for p in config.exchange.pair_whitelist))  # in config order
        self._routing = routing
        self._state = state
        self.ticker = ticker
        self.clock = clock
        self.config = config
        self.sim = sim
        self._owns_sim = owns_sim
        self._stopped = False
        """Set when `stop()` begins: new placements are refused from then on."""
        self._closed = False
        """Set when `stop()` has stopped the actors: queries raise `EngineStopped`. During the drain before it, reads
        of the database work; those the root answers (health, balances, open orders) wait until the drain is over
        (its thread runs the stop), or their timeout."""
        self._stop_lock = threading.Lock()
        self._stop_done = threading.Event()
        self._stop_summary: Mapping[str, int] = {}
        self._cancel_thread = CancelThread()

    # ---- life cycle -----------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        config: Config | None = None,
        *,
        clock: Clock | None = None,
        sim: Any = None,
        database_url: str | None = None,
        spool_path: Path | None = None,
        risk_manager: RiskManager | None = None,
        listeners: Sequence[EngineListener] = (),
        skip_startup_checks: bool = False,
        jitter_seed: int | None = None,
    ) -> Engine:
        """Start the engine and return its handle once every actor is up.

        Live trading (a real exchange, ``execution.dry_run = false``) starts only after the start-up checks
        passed (the key's permissions and restrictions, the clock, the whitelisted pairs: `engine.startup`),
        the same ones the daemon and ``check-config --online`` run.

        Args:
            config: the configuration (defaults: embedded simulator, dry run, SQLite under ./data).
            clock: the time source (tests pass a `ManualClock` and drive `engine.ticker.advance`).
            sim: an already running `sim.Simulator` to use instead of starting the embedded one.
            database_url / spool_path: override the configured storage (tests use temporary ones). A given
                `database_url` is used as it is; the configured one gets ``database.password`` merged in.
            risk_manager: the pre-trade risk check (`engine.execution.RiskManager`); by default a
                `DefaultRiskManager` built from the ``[risk]`` section.
            listeners: called for every order event from the very start, so they also hear what crash
                recovery does before `start` returns (`subscribe` adds listeners later).
            skip_startup_checks: DANGEROUS — trade live without the start-up checks (a key that can withdraw,
                a skewed clock, an unlisted pair). Only for a caller that has just run them itself (the daemon
                prints them before it starts the engine).
            jitter_seed: seeds the retry and reconnect jitter (the gateway's, the streams'); by default one drawn
                from the OS, so engines sharing an IP do not retry in step. The seed used is logged at start.

        Raises:
            StartupChecksFailed: live mode, and a start-up check failed; nothing was started.
            DatabaseInUseError: another engine is running on the same database (one engine per database:
                `db.acquire_instance_lock`); nothing was started. A subclass of RuntimeError.
            LockUnavailableError: the database could not be reached to take that lock (a RuntimeError too).
            RuntimeError: the engine could not start (the log says why).
        """
        import pykka

        from actors._ticker import Ticker
        from actors.root import EngineState, RootActor, RootSettings, Routing
        from engine.api._lockwatch import LockGuard
        from engine.api._wiring import (
            default_risk_manager,
            draw_jitter_seed,
            endpoint_for,
            gateway_settings,
            make_embedded_sim,
            make_paper_sim,
            pair_settings,
            stream_settings,
        )

        config = config or Config()
        # Masked in every line `engine.logs.setup_logging` formats (the daemon's; a host application's that calls
        # it): the engine does not take over the process's logging itself.
        add_secrets(config.secret_values())
        clock = clock or SystemClock()
        ex = config.exchange
        # Dry run on a real venue trades on a local paper exchange that follows the venue's public prices: the
        # gateway and the streams talk to it, never to the venue, and the configured API key is not used.
        paper = ex.name is not ExchangeName.SIM and config.execution.dry_run
        owns_sim = False
        if sim is None and (ex.name is ExchangeName.SIM or paper):
            # Started here and stopped by `stop()`: the engine owns it for its whole life.
            sim = (make_paper_sim(config) if paper else make_embedded_sim(config)).start()
            owns_sim = True
        local = sim if (ex.name is ExchangeName.SIM or paper) else None
        state = EngineState(
            kill_switch=config.risk.kill_switch, min_wallet_btc=config.execution.min_wallet_btc, require_wallet=True
        )
        guard = LockGuard(state, log_alert)
        db_lock: InstanceLock | None = None
        ticker = root = None
        try:  # every failure below stops what was started and lets go of the lock (Ctrl+C during start too)
            endpoint = endpoint_for(config, local)
            if local is None and not skip_startup_checks:
                # Live: real orders leave only once the checks passed (invariant 5). Nothing is started yet.
                require_startup_checks(config, endpoint)
            database_url = database_url or config.database.connection_url()
            seed = draw_jitter_seed() if jitter_seed is None else jitter_seed
            logger.info("engine starting: jitter seed {} (Engine.start(jitter_seed=...) replays it)", seed)
            settings = RootSettings(
                config=config,
                gateway=gateway_settings(config, endpoint, jitter_seed=seed),
                database_url=database_url,
                spool_path=spool_path or config.database.spool_dir / "spool.jsonl",
                pair_settings=pair_settings(config),
                risk_manager=risk_manager or default_risk_manager(config),
                stream=stream_settings(config, endpoint, local, jitter_seed=seed + 1),
                reconcile_interval_ms=int(config.stream.reconcile_interval_s * 1000),
                unhealthy_reconcile_ms=int(config.stream.reconcile_interval_unhealthy_s * 1000),
                listeners=tuple(listeners),
            )
            # Before anything reads the database: a second engine would take this one's requests for a crash's.
            db_lock = guard.take(database_url)
            ticker = Ticker(clock)
            ticker.start()
            routing = Routing()
            root = RootActor.start(settings, clock=clock, ticker=ticker, state=state, routing=routing, alerts=log_alert)
            guard.bind(root)
            # Barrier: the root starts its children in its own thread; wait until it is answering.
            try:
                root.proxy().pair_refs().get(timeout=_START_WAIT_S)
            except pykka.ActorDeadError:
                raise RuntimeError("the engine failed to start; the log says why") from None
        except BaseException:
            # The root goes on starting its children after the caller gave up (a timeout, Ctrl+C): it is asked to
            # stop (taken once its start is done; its on_stop stops the children) and waited for, or the tree
            # would run on without ticker or lock, on threads that keep the process from exiting.
            stopped = root.stop(block=False) if root is not None else None
            if ticker is not None:
                ticker.stop()
            if stopped is not None:
                try:
                    stopped.get(timeout=_UNSTART_WAIT_S)
                except Exception as exc:  # noqa: BLE001 - logged: the original failure is what is raised
                    logger.error("the engine's actors did not stop after its failed start: {!r}", exc)
            if owns_sim:
                sim.stop()
            if db_lock is not None and (root is None or state.children_stopped.is_set()):  # kept while one may write
                db_lock.release()
            raise
        engine = cls(root=root, routing=routing, state=state, ticker=ticker, clock=clock, config=config, sim=sim,
                     owns_sim=owns_sim, db_lock=db_lock)  # fmt: skip
        stop_at_exit(engine)  # a script that ends (or raises) without `stop()` still exits
        return engine

    def stop(self, graceful: bool = True) -> Mapping[str, int]:
        """Stop the engine: stop intake, cancel or keep open orders (`execution.on_shutdown`), flush, stop.

        Returns a summary, each order counted once as the exchange's answers left it: `canceled` (the exchange
        confirmed the cancel) and `open` (not terminal: kept, or its cancel not confirmed) always; when not 0,
        `outcome_unknown` (sent, never answered nor seen: maybe at the exchange, not in `open`; the next start
        looks them up), `ended_otherwise` (canceled by the shutdown but filled or expired meanwhile), `withdrawn`
        (requests ended with nothing at the exchange) and `unanswered` (pairs whose actor did not answer). With
        `graceful=False` open orders are left as they are. A second call (another thread) waits for the first to
        finish and returns the same summary.

        Orders left open (`on_shutdown = "keep"`, or `graceful=False`) outlive the engine only on an exchange that
        does: the simulated exchange the engine started itself (the embedded simulator, or a dry run's paper
        exchange) stops with it, and its orders end with it — a WARNING says so and the summary adds
        `ended_with_simulator` (those open orders; a restart finds them gone). Pass `Engine.start(sim=...)` a
        simulator that outlives the engine to keep them.
        """
        refuse_on_engine_thread("Engine.stop")
        with self._stop_lock:
            first, self._stopped = not self._stopped, True
        if not first:
            self._stop_done.wait(_STOP_WAIT_S)
            return self._stop_summary
        summary: Mapping[str, int] = {}
        try:
            cancel = graceful and self.config.execution.on_shutdown == "cancel"
            summary = self._root.proxy().shutdown(cancel).get(timeout=60)
            if not cancel and self._owns_sim:
                summary = ended_with_simulator(summary)
        except pykka.ActorDeadError:
            # The root died (alert `root_error`) and stops its children as it goes: nothing to drain or cancel.
            logger.error("engine stop: the root actor had died; open orders were left as they are")
            # Over once the root has tried every child, stopped or not (`children_stopped` says whether all did).
            if not self._state.children_stop_over.wait(_STOP_WAIT_S):
                logger.error("engine stop: the dead root's children did not stop within {} s", _STOP_WAIT_S)
        finally:
            # Each step on its own: one that fails (an actor that will not stop) must not skip the others.
            steps: list[tuple[str, Callable[[], object]]] = [
                ("the actors", lambda: self._root.stop(timeout=60)),
                ("the ticker", self.ticker.stop),
                ("the cancel thread", self._cancel_thread.close),
            ]
            if self._owns_sim and self.sim is not None:
                steps.append(("the simulator", self.sim.stop))
            if self._db_lock is not None:
                steps.append(("the database lock", self._release_db_lock))
            for what, step in steps:
                try:
                    step()
                except Exception:  # noqa: BLE001 - logged; the rest of the stop goes on
                    logger.exception("stopping {} failed", what)
            self._closed = True
            self._stop_summary = summary
            self._stop_done.set()
            engine_stopped(self)
        logger.info("engine stopped: {}", dict(summary))
        return summary

    def _release_db_lock(self) -> None:
        # Kept while actors may still write (a child that would not stop): another engine must not start on the
        # database under them. The process ending releases it anyway.
        if self._state.children_stopped.is_set():
            assert self._db_lock is not None
            self._db_lock.release()
        else:
            logger.error("engine stop: actors may still run; the database lock is kept until the process ends")

    def actors_alive(self) -> bool:
        """True while the engine's actors run (until `stop`, or their failure)."""
        return bool(self._root.is_alive())

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- requests -------------------------------------------------------------------------------------
    @running("get_order")
    def get_order(self, pair: str, client_order_id: str) -> Order | None:
        """One order of `pair`: from the pair actor while it is live, else from the database; None when `pair`
        has no such order (another pair's client order id included, as the control API's 404).

        Raises:
            EngineStopped: the engine was stopped.
        """
        target = self._routing.get(pair_arg(pair))
        if not isinstance(client_order_id, str) or not client_order_id.isascii():
            return None  # Binance's client order ids are ASCII: no such order (a lone surrogate raised from the driver)
        order: Order | None = None
        if target is not None:
            try:
                order = target.get_order(client_order_id).get(timeout=_ASK_TIMEOUT_S)
            except pykka.ActorDeadError:
                order = None  # the database has what it stored
        if order is None:
            store = self._root.proxy().store().get(timeout=_ASK_TIMEOUT_S)
            order = store.proxy.get_order(client_order_id).get(timeout=_ASK_TIMEOUT_S)
        # Client order ids are unique across pairs, so the database finds another pair's order by its id alone.
        return order if order is not None and order.pair == pair else None

    @running("open_orders")
    def open_orders(self, pair: str | None = None) -> list[Order]:
        """Open orders, of one pair or all (a pair halted past its restart budget: the orders its book tracks;
        a pair whose actor is being restarted is skipped). Pairs outside the whitelist are included while the
        engine tracks its own orders there (placed before the whitelist changed).

        Raises:
            EngineStopped: the engine was stopped.
        """
        root = self._root.proxy()
        pairs = (
            [pair_arg(pair)]
            if pair is not None
            else [*self._whitelist, *root.outside_pairs().get(timeout=_ASK_TIMEOUT_S)]
        )
        out: list[Order] = []
        for p in pairs:
            target = self._routing.get(p)
            if target is None:
                out.extend(root.tracked_open_orders(p).get(timeout=_ASK_TIMEOUT_S))
                continue
            try:
                out.extend(target.open_orders().get(timeout=_ASK_TIMEOUT_S))
            except pykka.ActorDeadError:
                # Halted past its restart budget, the pair's book is tracked by the root: its orders stay
                # visible. While the actor is being restarted there is nothing to ask; skipped.
                tracked = root.tracked_open_orders(p).get(timeout=_ASK_TIMEOUT_S)
                if not tracked:
                    logger.bind(pair=p).warning("open orders: the pair actor is not running; skipped")
                out.extend(tracked)
        return out

    @running("subscribe")
    def subscribe(self, listener: EngineListener, *, inline: bool = False) -> Callable[[], None]:
        """Call `listener(event)` for every order event; returns a function that unsubscribes.

        By default each listener runs on a thread of its own, with its own queue of events: a slow or failing
        listener delays only itself — never trading, never the other listeners (a backlog is logged: WARNING at
        1,000 queued events). Events of one pair reach a listener in order. `unsubscribe` (and `stop`) waits a
        few seconds for the events already queued for it, then drops the rest. `inline=True` calls it on the
        thread that produced the event (the pair's actor) instead, saving a thread hop (the lowest fill latency):
        it must then be quick and never block, because its pair waits for it. Either way an exception in a
        listener is logged and ignored. An inline listener must not wait on the engine: the actor calling it is the
        one that would answer, so a query, `unsubscribe` or `stop` from it raises `RuntimeError` at once. A
        listener on its own thread may query the engine (its next events wait meanwhile), but must not call its
        own `unsubscribe`, or `stop`, from inside the call: those wait for its queue to drain, which it holds up,
        so they stall a few seconds and drop its queued events. Hand such work to a thread of its own (placing an
        order is fine: it returns a future at once).

        Raises:
            EngineStopped: the engine was stopped.
        """
        if not callable(listener):  # accepted, it failed at every event ("listener failed", logged each time)
            raise TypeError(f"a listener is called with each event: got {type(listener).__name__}")
        bus = self._root.proxy().bus().get(timeout=_ASK_TIMEOUT_S)
        token = bus.subscribe(listener, inline).get(timeout=_ASK_TIMEOUT_S)

        def unsubscribe() -> None:
            refuse_on_engine_thread("unsubscribe")
            if self._closed:  # a stopped engine calls no listener any more: nothing to undo
                return
            try:
                bus.unsubscribe(token).get(timeout=_ASK_TIMEOUT_S)
            except pykka.ActorDeadError:
                if not self._stopped:  # the bus died for another reason: the caller must hear of it
                    raise

        return unsubscribe

    def pause(self, paused: bool = True) -> None:
        """Kill switch: refuse new requests (`kill_switch`) while paused; tracking continues.

        Raises:
            TypeError: `paused` is not a bool (`pause("no")` paused).
        """
        if not isinstance(paused, bool):
            raise TypeError(f"paused must be True or False, got {paused!r}")
        self._state.update(kill_switch=paused)

    @property
    def halted(self) -> bool:
        """True in the safe halted state (no new orders)."""
        return self._state.intake().halted
