"""What keeps an embedded engine from hanging its process or itself: a stop at interpreter exit, and queries refused
on the engine's own threads.

An engine's actors run on non-daemon threads (pykka's default; the daemon's stop must finish its writes). A script
whose strategy code raised between `Engine.start` and `Engine.stop` printed its traceback and then never exited:
Python waits for those threads, and the user stream went on. `stop_at_exit` stops such an engine (gracefully, as
configured) from `threading`'s exit hooks, which run before Python joins the non-daemon threads (`atexit` runs
after, too late).

An inline listener runs on its pair actor's thread: a query there waits on the actor that would answer it, and a
stop from there waited a minute of timeouts, then left the database locked until the process ended. The engine's
actors mark their threads (`mark_engine_thread`); `refuse_on_engine_thread` turns such a call into an immediate
error.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import pykka
from loguru import logger

__all__ = ["ended_with_simulator", "engine_stopped", "mark_engine_thread", "refuse_on_engine_thread", "stop_at_exit"]

_LOCAL = threading.local()
_LIVE: set[Any] = set()
_LOCK = threading.Lock()
_hooked = False
_JOIN_SLICE_S = 0.5
_TELL_EVERY_S = 30.0


def mark_engine_thread() -> None:
    """Mark the calling thread as one of an engine's actors (called from the actor's `on_start`)."""
    _LOCAL.engine = True


def refuse_on_engine_thread(what: str) -> None:
    """Raise at once when called on an engine actor's thread (an inline listener), where `what` would wait on the
    engine itself.

    Raises:
        RuntimeError: called on an engine actor's thread.
    """
    if getattr(_LOCAL, "engine", False):
        raise RuntimeError(
            f"{what} called on an engine actor's thread (an inline listener): it would wait on the actor that "
            "must answer it. Subscribe without inline=True, or hand the call to a thread of its own"
        )


def stop_at_exit(engine: Any) -> None:
    """Stop `engine` when the interpreter exits with it still running (its actors' threads would keep the process
    alive for ever)."""
    global _hooked
    with _LOCK:
        _LIVE.add(engine)
        if not _hooked:
            # Private but stable since 3.9 (concurrent.futures uses it): runs before the non-daemon threads are
            # joined, which `atexit` does not.
            threading._register_atexit(_stop_the_running)  # type: ignore[attr-defined]
            _hooked = True


def _running() -> list[Any]:
    with _LOCK:
        return [engine for engine in _LIVE if engine.actors_alive()]


def _busy_pool(worker: threading.Thread) -> bool:
    # A pool worker is the program's while its pool has work queued or running: Python's exit waits for that work
    # (a strategy submitted to a pool). An idle one ends only in the pools' own exit hook, which runs after this.
    try:
        executor = worker._args[0]() if getattr(worker, "_args", None) else None  # type: ignore[attr-defined]
        if executor is None:
            return True  # its pool was collected: the worker runs what is queued, then ends by itself
        return bool(executor._work_queue.qsize() > 0 or len(executor._threads) > executor._idle_semaphore._value)
    except (AttributeError, IndexError, TypeError):  # another Python's internals: never wait on what may not end
        return False


def _program_threads() -> list[threading.Thread]:
    """The non-daemon threads Python would wait for that are the program's own: not the caller's, the engine's
    actors' (pykka names an actor's thread `<class>-<n>`), UBWA's (the streams'), nor an idle pool worker (the pools'
    own exit hook, which runs after this one, ends those; the engine's cancel thread is one)."""
    from concurrent.futures import thread as pool_threads

    actors = {ref.actor_class.__name__ for ref in pykka.ActorRegistry.get_all()}
    pools = {t for t in pool_threads._threads_queues if t.name.startswith("engine-cancel") or not _busy_pool(t)}
    here = threading.current_thread()
    return [
        t for t in threading.enumerate()
        if t is not here and not t.daemon and t.is_alive() and t not in pools
        and t.name.rpartition("-")[0] not in actors
        and not any(c.__module__.startswith("unicorn_binance_websocket_api") for c in type(t).__mro__)
        and not t.name.startswith("_create_stream_thread")
    ]  # fmt: skip


def _forget_in_a_child() -> None:
    # A forked child (multiprocessing, a process pool) inherits the exit hook and this set, not the engine: its
    # exit hung for minutes stopping a copy whose actors run only in the parent. (The lock anew: the fork may have
    # copied it held.)
    global _LOCK
    _LOCK = threading.Lock()
    _LIVE.clear()


os.register_at_fork(after_in_child=_forget_in_a_child)


def engine_stopped(engine: Any) -> None:
    """`engine` was stopped: nothing to do for it at exit."""
    with _LOCK:
        _LIVE.discard(engine)


def _stop_the_running() -> None:
    # The main thread has ended. The program's other threads may still use the engine (a strategy on a worker
    # thread that stops it itself): wait for them first, as Python would; only the engine's own threads are left.
    waited_s = 0.0
    while _running() and (others := _program_threads()):
        others[0].join(_JOIN_SLICE_S)
        waited_s += _JOIN_SLICE_S
        if waited_s % _TELL_EVERY_S < _JOIN_SLICE_S:  # a thread that never ends keeps the process, as Python would
            names = ", ".join(t.name for t in others)
            logger.warning("exiting: the engine still runs and waits for the program's threads to end: {}", names)
    for engine in _running():  # those whose actors are gone (stopped some other way) hold nothing
        logger.warning("the interpreter is exiting with the engine running (Engine.stop() never called): stopping it")
        try:
            engine.stop()
        except Exception:  # noqa: BLE001 - exiting: log it and let the process end
            logger.exception("stopping the engine at exit failed")


def ended_with_simulator(summary: Mapping[str, int]) -> Mapping[str, int]:
    """Open orders were kept, on a simulated exchange that stops with this engine: they end with it."""
    kept = summary.get("open", 0) + summary.get("outcome_unknown", 0)  # whatever of those exists ends too
    if kept:  # nothing kept: nothing to warn about (most stops that are not graceful, tests' among them)
        logger.warning("engine stop: {} open order(s) kept (execution.on_shutdown = keep, or a stop that is not "
                       "graceful), but the simulated exchange this engine started stops with it and its orders end "
                       "with it: nothing is kept for the next start, which finds them gone", kept)  # fmt: skip
    return {**summary, "ended_with_simulator": kept}
