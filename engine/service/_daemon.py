"""`python run.py daemon`: the engine as a long-lived service with its control API.

Start-up, in order: configuration → (sim) the embedded simulator → start-up checks → what the database holds
from an earlier run → the engine → the control API → a banner saying where the API listens and how to send a
first order. The main thread then only waits for a signal:

- first SIGINT/SIGTERM: graceful shutdown — refuse new orders, stop the engine (cancel or keep open orders per
  ``execution.on_shutdown``, flush), stop the API, print a summary, exit 0;
- a second one: exit at once (SQLite and PostgreSQL commits are atomic, so an interrupted batch is simply not
  committed; the spool and the exchange hold what is needed for the next start's reconciliation);
- SIGUSR1: log every thread's traceback (deadlock diagnosis), keep running.

The start-up checks are the ones `check-config --online` runs (keys, clock, filters, wallet, withdrawal
permission); a failure stops the daemon. The database is then read once, under the engine's instance lock, for
orders a previous run left open, so the operator sees at start what reconciliation is about to resolve.

This module imports nothing heavy at import time: the CLI builds its parser from it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from engine.cli import add_log_arguments
from engine.service._banner import cli_command, shown_path
from engine.service._exposure import cleartext_warnings

if TYPE_CHECKING:
    from engine.config import Config, LoadedConfig
    from engine.service._token import TokenSource

__all__ = ["add_arguments", "run"]

EXIT_OK = 0
EXIT_START_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``daemon``."""
    parser.add_argument("path", nargs="?", default=None, help="TOML configuration file (optional)")
    parser.add_argument("--config", dest="config_opt", metavar="PATH", default=None, help="same as PATH")
    # The same definition as check-config's: any case accepted, a bad level a usage error (exit 2).
    add_log_arguments(parser)


def _say(text: str, *, err: bool = False) -> None:
    """A status line on stdout (stderr with `err`). A write that fails (stdout redirected to a full disk, a closed
    pipe) is dropped: it must not turn a graceful stop into a crash with exit 1 (the log has the same line)."""
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr if err else sys.stdout, flush=True)


class _Signals:
    """First signal: ask for a graceful stop. Second: leave at once.

    A signal the kernel delivers to another thread does not interrupt a lock wait in the main thread, so the
    main thread never waits on a lock: it sleeps in `select` on a wakeup socket that the interpreter's C-level
    handler writes to from whichever thread received the signal; back in Python, the handler runs.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.received: int | None = None
        self.exit_note = ""  # what the exit at once leaves behind, said with it
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def install(self) -> None:
        import pykka.debug

        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGUSR1, pykka.debug.log_thread_tracebacks)

    def wait_for(self, event: threading.Event) -> None:
        """Block the main thread until `event` is set, running signal handlers as signals arrive."""
        while not event.is_set():
            select.select([self._reader], [], [])
            with contextlib.suppress(BlockingIOError):
                self._reader.recv(64)

    def wake(self) -> None:
        """Wake `wait_for` (from another thread) so it re-checks its event."""
        with contextlib.suppress(BlockingIOError):
            self._writer.send(b"\0")

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop.is_set():
            # os._exit: actor threads are not daemons and would keep a normal exit waiting.
            _say(f"second {signal.Signals(signum).name}: exiting now{self.exit_note}")
            os._exit(128 + signum)
        self.received = signum
        self.stop.set()


def run(args: argparse.Namespace) -> int:
    """Run the daemon until a signal; returns the exit code (0 after a graceful shutdown)."""
    from engine.cli._config_cmds import load_for_command

    # Before any file exists: the database (and its -wal/-shm), the log, the spool, the token and endpoint files
    # and their directories are the owner's only (0600/0700), whatever umask the daemon was started with.
    os.umask(0o077)
    signals = _Signals()
    signals.install()  # before anything slow, so an early Ctrl-C is graceful too
    loaded = load_for_command(args)
    if loaded is None:
        # The problems are listed above; this line says what became of the daemon, as for any other start failure.
        print("daemon not started: the configuration is invalid (problems listed above)", file=sys.stderr, flush=True)
        return EXIT_START_FAILED
    return _Daemon(loaded, signals).run()


class _Daemon:
    def __init__(self, loaded: LoadedConfig, signals: _Signals) -> None:
        self.loaded = loaded
        self.config: Config = loaded.config
        self.signals = signals
        self.sim: Any = None
        self.alerts: Any = None

    def run(self) -> int:
        from loguru import logger

        from engine.logs import redact
        from engine.service._stop_summary import ended_with_simulator, stop_line

        mode = self.config.execution.on_shutdown
        # Every part started is registered in `parts` as soon as it runs, so a failure anywhere in start-up stops
        # what did start: the engine's actor threads are not daemons and would otherwise keep the process alive,
        # its API still taking orders, with no main thread left to act on SIGTERM.
        with contextlib.ExitStack() as parts:
            try:
                engine, api, token = self._start(parts)
                self._banner(api.url, token)
            except _StartFailed as exc:  # its message may quote an exception's: a URL, a key
                logger.error("daemon not started: {}", exc)
                _say(f"daemon not started: {redact(str(exc))}", err=True)
                return EXIT_START_FAILED
            except _StoppedDuringStart as exc:
                _say(f"{exc}: stopped before taking any order")
                return EXIT_OK
            except BaseException as exc:  # noqa: BLE001 - whatever it is, what started must be stopped
                logger.opt(exception=exc).error("daemon not started: unexpected error during start-up")
                _say(
                    f"daemon not started: unexpected {type(exc).__name__} during start-up: {redact(str(exc))} "
                    "(traceback in the log); everything started was stopped",
                    err=True,
                )
                return EXIT_START_FAILED
            self.signals.wait_for(self.signals.stop)
            name = signal.Signals(self.signals.received or signal.SIGTERM).name
            logger.warning("{} received: shutting down (send it again to exit at once)", name)
            _say(f"{name} received: shutting down gracefully (again to exit at once)")
            api.drain()
            # Leaving the block then stops the API, the simulator and the alerts, and removes the endpoint file.
            own_sim = self.sim is not None  # the embedded simulator or the paper exchange: only in this process
            summary = ended_with_simulator(self._stop_engine(engine), on_shutdown=mode, own_simulator=own_sim)
        _say(stop_line(summary, mode))
        return EXIT_OK

    def _stop_engine(self, engine: Any) -> Mapping[str, int]:
        """Stop the engine (graceful) in a worker thread while the main thread stays free to act on a second signal.

        A second call returns at once: `Engine.stop` does nothing on a stopped engine.
        """
        import concurrent.futures

        done = threading.Event()

        def finished(_future: object) -> None:
            done.set()
            self.signals.wake()

        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shutdown")
        future = pool.submit(engine.stop, True)
        future.add_done_callback(finished)
        self.signals.wait_for(done)
        pool.shutdown(wait=False)
        summary: Mapping[str, int] = future.result()
        return summary

    def _start(self, parts: contextlib.ExitStack) -> tuple[Any, Any, TokenSource]:
        """Start every part in order, registering each one's stop in `parts` as soon as it runs."""
        from loguru import logger

        from engine.api import Engine
        from engine.api._wiring import endpoint_for, make_embedded_sim, make_paper_sim
        from engine.config import ExchangeName
        from engine.logs import add_secrets
        from engine.service._server import ControlApi, bind_listener
        from engine.service._token import endpoint_file_for, ensure_token, write_endpoint

        cfg = self.config
        api_cfg = cfg.api
        try:
            token = ensure_token(api_cfg.token.get_secret_value() if api_cfg.token else None, api_cfg.token_path)
        except (OSError, ValueError) as exc:
            raise _StartFailed(f"API token: {exc}") from None
        add_secrets([token.token])  # never in any log line, whatever path it takes
        for warning in cleartext_warnings(cfg):
            logger.warning("{}", warning)
        if token.generated:
            logger.info("control API token generated into {} (mode 0600)", token.origin)
        try:
            # Bound first: a daemon that cannot serve must stop before the engine starts. Stopping after it would
            # have resumed (and under on_shutdown = cancel, canceled) whatever the database holds open.
            listeners = bind_listener(api_cfg.host, api_cfg.port)
        except OSError as exc:
            raise _StartFailed(f"control API cannot listen on {api_cfg.host}:{api_cfg.port}: {exc}") from None
        for sock in listeners:
            parts.callback(sock.close)
        parts.callback(_quietly, "stop the alerts", self._stop_alerts)
        self._start_alerts()
        parts.callback(_quietly, "stop the simulator", self._stop_sim)
        if cfg.exchange.name is ExchangeName.SIM:
            self.sim = make_embedded_sim(cfg).start()
        elif cfg.execution.dry_run:
            # Paper trading on a real venue: the checks and the engine talk to the local paper exchange, so
            # the key never reaches the venue in dry run.
            try:
                self.sim = make_paper_sim(cfg).start()
            except RuntimeError as exc:
                raise _StartFailed(str(exc)) from None
        if self.sim is not None:
            self.signals.exit_note = " (orders still open end with the simulator this daemon started)"
        endpoint = endpoint_for(cfg, self.sim)
        if not _run_startup_checks(cfg, endpoint):
            raise _StartFailed("start-up checks failed (see above)")
        _leftover_open_orders(cfg.database.connection_url())
        if self.signals.stop.is_set():
            # A stop asked for is a graceful stop, whenever it comes: exit 0, as after running.
            name = signal.Signals(self.signals.received or signal.SIGTERM).name
            raise _StoppedDuringStart(f"{name} received during start-up")
        try:
            # The checks were just run and printed above; running them again would only repeat the calls.
            engine = Engine.start(cfg, sim=self.sim, skip_startup_checks=True)
        except (RuntimeError, OSError) as exc:
            raise _StartFailed(f"engine: {exc}") from None
        parts.callback(_quietly, "stop the engine", self._stop_engine, engine)
        if self.signals.stop.is_set():  # asked during Engine.start: stopped before the API takes any order
            name = signal.Signals(self.signals.received or signal.SIGTERM).name
            raise _StoppedDuringStart(f"{name} received during start-up")
        recovery = engine.health().get("recovery") or {}
        print(
            f"crash recovery: {recovery.get('requests_resumed', 0)} unfinished request(s) resumed, "
            f"{recovery.get('orders_to_reconcile', 0)} order(s) being reconciled with the exchange"
            + _outside_whitelist(recovery),
            flush=True,
        )
        api = ControlApi(engine, token.token)
        parts.callback(_quietly, "stop the control API", api.stop)
        try:
            url = api.start(api_cfg.host, api_cfg.port, socks=listeners)
        except OSError as exc:
            raise _StartFailed(f"control API cannot listen on {api_cfg.host}:{api_cfg.port}: {exc}") from None
        write_endpoint(endpoint_file_for(api_cfg.token_path), url)
        parts.callback(_quietly, "remove the endpoint file", _remove_endpoint, cfg)
        return engine, api, token

    def _banner(self, url: str, token: TokenSource) -> None:
        cfg = self.config
        mode = "dry run" if cfg.execution.dry_run else "LIVE"
        pair = cfg.exchange.pair_whitelist[0]
        auth = (
            '"Authorization: Bearer $FREQTRADE__API__TOKEN"'
            if token.origin.startswith("configuration")
            else f'"Authorization: Bearer $(cat {token.origin})"'
        )
        body = f'{{"pair": "{pair}", "side": "buy", "amount": "0.001", "order_type": "market"}}'
        pairs = ",".join(cfg.exchange.pair_whitelist)
        run_py = cli_command()
        # The client finds the token and the endpoint file through the configuration: the daemon's, when it had one.
        opt = f" --config {shown_path(str(self.loaded.path))}" if self.loaded.path is not None else ""
        lines = [
            f"engine running: exchange={cfg.exchange.name.value} mode={mode} pairs={pairs}",
            f"control API listening on {url} (bearer token: {token.origin})",
            f"first order:  {run_py} order buy {pair} 0.001{opt}",
            f"   or:        curl -H {auth} -H 'Content-Type: application/json' -d '{body}' {url}/orders",
            f"watch events: {run_py} watch{opt}    status: {run_py} status{opt}    stop: Ctrl-C / SIGTERM",
        ]
        print("\n".join(lines), flush=True)

    def _start_alerts(self) -> None:
        from loguru import logger

        from engine.service._alerts import alerts_from_config

        self.alerts = alerts_from_config(self.config.alerts)
        if self.alerts is None:
            logger.info("alerts: log only (set alerts.webhook_url or alerts.telegram_token and telegram_chat_id)")
            return
        self.alerts.install()
        logger.info("alerts: log and {}", " and ".join(self.alerts.destinations))

    def _stop_alerts(self) -> None:
        if self.alerts is not None:
            self.alerts.close()
            self.alerts = None

    def _stop_sim(self) -> None:
        if self.sim is not None:
            self.sim.stop()
            self.sim = None


class _StartFailed(Exception):
    """The daemon cannot start; the message says why (printed redacted: it may quote an exception's)."""


class _StoppedDuringStart(Exception):
    """A stop signal arrived during start-up: a graceful stop before the engine started."""


def _quietly(what: str, stop: Callable[..., object], *args: Any) -> None:
    """Run one part's stop, logging a failure instead of raising it, so the parts after it are stopped too."""
    from loguru import logger

    try:
        stop(*args)
    except Exception:  # noqa: BLE001 - logged with its traceback; the other parts must still be stopped
        logger.opt(exception=True).error("daemon: could not {}", what)


def _remove_endpoint(config: Config) -> None:
    from engine.service._token import endpoint_file_for, remove_endpoint

    remove_endpoint(endpoint_file_for(config.api.token_path))


def _run_startup_checks(config: Config, endpoint: Any) -> bool:
    """Run every start-up check, print the verdicts; True when none failed."""
    from loguru import logger

    from engine.cli._online import run_online_checks
    from engine.startup import CheckStatus, format_checks

    results = run_online_checks(config, endpoint)
    failed = [r for r in results if r.status is CheckStatus.FAIL]
    warned = [r for r in results if r.status is CheckStatus.WARN]
    print(format_checks(results), flush=True)
    print(
        f"start-up checks: {len(results) - len(failed)} passed or skipped ({len(warned)} warnings), "
        f"{len(failed)} failed",
        flush=True,
    )
    for result in failed:
        logger.bind(check=result.name).error("start-up check failed: {}", result.detail)
    return not failed


def _leftover_open_orders(database_url: str) -> int:
    """Count (and report) orders the database still holds as open from an earlier run; -1 if unreachable."""
    from loguru import logger

    from db import DatabaseAuthError, DatabaseInUseError, DatabaseSchemaError, DatabaseUrlError, StorageError
    from db._repository import open_orders
    from engine.api._lockwatch import read_under_lock

    try:
        # Under the engine's lock: while another engine runs on the database, this one stops without touching it.
        orders = read_under_lock(database_url, open_orders)
    except DatabaseInUseError as exc:
        raise _StartFailed(f"engine: {exc}") from None
    except (DatabaseSchemaError, DatabaseUrlError, DatabaseAuthError) as exc:
        # Permanent until the operator acts (unknown schema, malformed URL, refused credentials): retrying can't help.
        raise _StartFailed(f"database: {exc}") from None
    except OSError as exc:
        # A SQLite directory that cannot be created (check-config refuses it; it may have gone since): one line.
        where = f" {exc.filename}" if exc.filename else ""
        raise _StartFailed(
            f"database: cannot create or open{where}: {exc.strerror or exc}; check database.url"
        ) from None
    except StorageError as exc:
        # Unreachable: the engine tries again as it starts, but its crash recovery must read the database first.
        logger.warning("could not read the database before start: {}", exc)
        print("database: unreachable before start (see the log); the engine cannot start without it", flush=True)
        return -1
    if isinstance(orders, int):  # its schema version: behind this engine's, nothing read (`read_under_lock`)
        what = "new: created at start" if orders == 0 else (
            f"schema {orders}, made by an older engine: migrated at start, then crash recovery reads it")  # fmt: skip
        print(f"database: {what}", flush=True)
        return 0
    if orders:
        ids = ", ".join(f"{o.pair} {o.client_order_id} ({o.status.value})" for o in orders[:10])
        more = f" and {len(orders) - 10} more" if len(orders) > 10 else ""
        logger.warning("{} order(s) left open by an earlier run: {}{}", len(orders), ids, more)
        print(f"database: {len(orders)} order(s) left open by an earlier run: {ids}{more}", flush=True)
    else:
        print("database: no open orders from an earlier run", flush=True)
    return len(orders)


def _outside_whitelist(recovery: dict[str, int]) -> str:
    """The recovery line's part for pairs no longer whitelisted (tracked to their end, never traded); "" if none."""
    requests, orders = recovery.get("outside_whitelist_requests", 0), recovery.get("outside_whitelist_orders", 0)
    if not requests and not orders:
        return ""
    return f"; {requests} request(s) and {orders} order(s) of pairs no longer whitelisted, tracked to their end"
