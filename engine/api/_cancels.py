"""Canceling a request of a running engine: `Engine.cancel_order`, and where its answer comes from.

The pair's actor answers from its book without waiting on anything: the cancels it queued, the request's end,
or that its book does not hold the request (`_Reply` with None). Only then is the database asked — a finished
request leaves memory once its trade is stored, so the pair's own records are in the database's queue ahead of
the question — and it is asked on the engine's cancel thread (`CancelThread`): never on the caller's thread
(`cancel_order` returns at once) and never on an actor's. A pair whose actor is not running is the root's
question (`RootActor.cancel_tracked`: it runs a halted pair's book); the wait for the root is on that thread too.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pykka
from loguru import logger

from engine.api._requests import _NoStore
from engine.api._types import Cancellation, CancelOutcome, CancelStatus
from engine.domain import Pair, RequestId

__all__ = ["CancelThread", "EngineCancels"]

_ASK_TIMEOUT_S = 15.0
_CLOSED = "the cancel thread is closed: the engine stopped"


class CancelThread:
    """The one thread on which an answer may wait (the database, the root, a pair's actor), started on first use:
    a cancel's (here), a replayed idempotency key's (`engine.api._replays`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    def submit(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run `fn(*args)` on the thread; False once `close` was called (nothing is run)."""
        with self._lock:
            if self._closed:
                return False
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-cancel")
            self._pool.submit(_logged, fn, *args)
            return True

    def close(self) -> None:
        """Take no more work; what is queued still runs (and answers: the engine is stopped by then)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)


def _logged(fn: Callable[..., object], *args: Any) -> None:
    # An executor keeps a task's exception in a future nobody reads: a bug here would be silent.
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - logged; the thread serves the next cancel
        logger.exception("an answer on the engine's cancel thread failed")


def _settle(future: Cancellation, outcome: CancelOutcome) -> None:
    """Answer `future` unless it was answered already (the first answer stands: a late one after a timeout)."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_result(outcome)


def _outcome(future: Cancellation, status: CancelStatus, message: str, **fields: Any) -> CancelOutcome:
    return CancelOutcome(status, future.pair, future.request_id, message, **fields)


class _Reply:
    """Where the actor that ran a cancel says what it did (from its own thread; this never blocks). None: the
    request is not in its book, and the database is asked (on the cancel thread)."""

    __slots__ = ("_future", "_look_up")

    def __init__(self, future: Cancellation, look_up: Callable[[Cancellation], None]) -> None:
        self._future = future
        self._look_up = look_up

    def __call__(self, outcome: CancelOutcome | None) -> None:
        if outcome is None:
            self._look_up(self._future)
        else:
            _settle(self._future, outcome)


class EngineCancels:
    """Mixed into `Engine`: `cancel_order`."""

    _closed: bool
    _stopped: bool
    _root: Any
    _whitelist: tuple[Pair, ...]
    _cancel_thread: CancelThread
    _tell_pair: Callable[..., bool]
    _store: Callable[[], Any]

    def cancel_order(self, pair: str, request_id: str) -> Cancellation:
        """Cancel a request: what rests at the exchange is canceled, and no fallback follows.

        Returns a `Cancellation`: a future resolving to a `CancelOutcome` — like `place_order`'s, it never raises
        and is never None — whose `status` says what was done: `cancel_sent` (the orders whose cancel is queued
        to the exchange, `client_order_ids`), `cancel_at_ack` (the order's create is not acknowledged yet: it is
        canceled at its ack), `withdrawn` (nothing was at the exchange: the request ended here), `already_done`
        (with its `final_status`), `unknown_request` (no such request on `pair`, running or stored),
        `not_whitelisted`, `shutting_down` (the engine is stopped), or `unavailable` (retry: the pair's actor is
        restarting, or the database could not be asked; when the root did not answer in time, the cancel may have
        been sent: its message says to look the request up before retrying).

        A request that is over while an order of it still rests (restored after it was summed up; an adopted or
        external order, whose request id is `adopted-<cid>` or `external-<cid>` in `open_orders()`) has that
        order canceled: `cancel_sent`.

        It resolves once the cancel is queued to the exchange, not when the exchange confirms it: the
        confirmation comes to subscribers as order events (`canceled` for the order, then `done` with the
        request's trade). The pair's actor answers from memory; a request no longer there (finished: its trade
        is stored) is looked up in the database. A pair halted past the restart budget is canceled all the same:
        the root runs its book (tracking only) and answers for it.
        """
        future = Cancellation(Pair(pair), RequestId(request_id))
        if self._closed:
            _settle(future, _outcome(future, CancelStatus.SHUTTING_DOWN, "the engine is stopped; nothing was sent"))
            return future
        if future.pair not in self._whitelist:
            message = f"{pair} is not in the pair whitelist; nothing was sent"
            _settle(future, _outcome(future, CancelStatus.NOT_WHITELISTED, message))
            return future
        reply = _Reply(future, self._look_up_stored)
        if self._tell_pair(future.pair, "cancel", future.request_id, reply):
            return future
        # No actor runs the pair (halted past the restart budget, or restarting): the root knows which, and runs
        # a halted pair's book. Asked now (in its inbox's order, as a tell to a pair is), waited for elsewhere.
        try:
            asked = self._root.proxy().cancel_tracked(future.pair, future.request_id, reply)
        except pykka.ActorDeadError as exc:
            _settle(future, self._no_answer(future, "the root", exc))
            return future
        if not self._cancel_thread.submit(self._await_root, future, asked):
            _settle(future, self._no_answer(future, "the root", _NoStore(_CLOSED)))
        return future

    def _await_root(self, future: Cancellation, asked: Any) -> None:
        """On the cancel thread: the root answers through the reply; only its failure is answered here."""
        try:
            asked.get(timeout=_ASK_TIMEOUT_S)
        except pykka.ActorDeadError as exc:  # the root stopped before it took the message: it sent nothing
            _settle(future, self._no_answer(future, "the root", exc))
        except Exception as exc:  # noqa: BLE001 - every failure is an answer to the caller
            # Asked, and not answered in time (or it failed on it): the root may still carry the cancel out.
            _settle(future, self._no_answer(future, "the root", exc, maybe_sent=True))

    def _look_up_stored(self, future: Cancellation) -> None:
        """The request is not in its pair's book (from the actor's thread): ask the database on the cancel thread."""
        if not self._cancel_thread.submit(self._find_finished, future):
            _settle(future, self._no_answer(future, "the database", _NoStore(_CLOSED)))

    def _find_finished(self, future: Cancellation) -> None:
        try:
            trade = self._store().get_trade(future.request_id).get(timeout=_ASK_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - every failure is an answer to the caller
            _settle(future, self._no_answer(future, "the database", exc))
            return
        pair, request_id = future.pair, future.request_id
        if trade is None:
            message = f"no request {request_id} on {pair}, executing or stored; nothing was sent"
            _settle(future, _outcome(future, CancelStatus.UNKNOWN_REQUEST, message))
        elif trade.pair != pair:
            message = f"no request {request_id} on {pair} (it is a request of {trade.pair}); nothing was sent"
            _settle(future, _outcome(future, CancelStatus.UNKNOWN_REQUEST, message))
        else:
            message = f"request {request_id} had already finished ({trade.status.value}); nothing was sent"
            _settle(future, _outcome(future, CancelStatus.ALREADY_DONE, message, final_status=trade.status))

    def _no_answer(
        self, future: Cancellation, who: str, exc: BaseException, *, maybe_sent: bool = False
    ) -> CancelOutcome:
        """The answer when `who` could not be asked or did not answer: the engine stopped, or retry later.
        `maybe_sent`: `who` was asked to carry the cancel out and may still do so (the root, timed out): the
        caller is told to look the request up before retrying, never that nothing was sent."""
        if maybe_sent:
            sent = "the cancel may or may not have been sent; look the request up (get_order / the events)"
            retry = f"{sent} before retrying"
        else:
            sent, retry = "nothing more is sent", "nothing was sent; retry"
        if self._stopped:
            return _outcome(future, CancelStatus.SHUTTING_DOWN, f"the engine stopped before {who} answered; {sent}")
        if isinstance(exc, pykka.Timeout):
            cause = "timeout"
        elif who == "the database" and not isinstance(exc, pykka.ActorDeadError | _NoStore):
            cause = "database"
        else:
            cause = "engine"
        asked = "did not answer" if maybe_sent else "could not be asked"
        message = f"{who} {asked} ({type(exc).__name__}: {exc}); {retry}"
        return _outcome(future, CancelStatus.UNAVAILABLE, message, details={"retry": "1", "cause": cause})
