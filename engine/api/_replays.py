"""The answer to a replayed idempotency key: what the original request did, not only its first order.

A strategy that re-sends a request after a crash, with the same key, does so to learn its outcome. The pair's
actor answers a replay with the request's first accepted order (`Accepted(duplicate=True)`): after a limit timed
out and its market fallback filled, that is a limit `canceled` with nothing filled — read as the outcome, the
strategy would buy again. So a duplicate's answer is completed before the caller gets it: the request's `trade`
once it has finished, and its `latest` order (the fallback, once one was sent), in their state now.

Where they are read: the trade and the request's orders from the database (persistence commits what it holds
before it answers, so the pair's own writes — the orders' write-aheads, the trade of a request that has just
finished — are seen), each order's live state from its pair's actor while the actor still holds it. That waits on
actors, so it runs on the engine's answer thread (`CancelThread`), never on the actor that answered (its thread
calls `answered`) nor on the caller's. The trade is read first: a trade found means the orders read after it are
final; none found, the orders are at least as recent as that "still executing".
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import pykka

from engine.api._cancels import CancelThread
from engine.api._types import Accepted, Placement, PlaceOutcome, Refusal, RefusalReason
from engine.domain import Order, OrderStatus, Pair, Trade

__all__ = ["EngineReplays", "replay_answer"]

_ASK_TIMEOUT_S = 15.0


def replay_answer(accepted: Accepted, orders: Sequence[Order], trade: Trade | None) -> Accepted:
    """`accepted` (a duplicate's answer from the pair's actor) completed with the request's `orders` (oldest first,
    in their state now) and its `trade` (None while it executes). Pure."""
    now = {o.client_order_id: o for o in orders}
    order = now.get(accepted.order.client_order_id, accepted.order)
    latest = next((o for o in reversed(orders) if o.status is not OrderStatus.REJECTED), order)
    return Accepted(order, duplicate=True, trade=trade, latest=latest)


def _settle(placement: Placement, outcome: PlaceOutcome) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):  # answered already: the first answer stands
        placement.set_result(outcome)


class EngineReplays:
    """Mixed into `Engine`: completes a duplicate's answer before its placement resolves (module docstring)."""

    _stopped: bool
    _routing: Any
    _cancel_thread: CancelThread
    _store: Callable[[], Any]

    def _actor_answer(self, placement: Placement) -> concurrent.futures.Future[PlaceOutcome]:
        """The future the pair's actor answers for `placement`: a duplicate is completed first, anything else
        passes straight through (on the answering thread, without waiting)."""
        answer: concurrent.futures.Future[PlaceOutcome] = concurrent.futures.Future()
        answer.add_done_callback(lambda done: self._answered(placement, done.result()))
        return answer

    def _answered(self, placement: Placement, outcome: PlaceOutcome) -> None:
        if not (isinstance(outcome, Accepted) and outcome.duplicate):
            _settle(placement, outcome)
            return
        if not self._cancel_thread.submit(self._complete, placement, outcome):
            _settle(placement, self._unread(outcome, "the engine stopped"))

    def _complete(self, placement: Placement, accepted: Accepted) -> None:
        """On the answer thread: read what the duplicate's request did, and answer."""
        request_id = accepted.order.request_id
        try:
            store = self._store()
            trade: Trade | None = store.get_trade(request_id).get(timeout=_ASK_TIMEOUT_S)
            stored: list[Order] = store.find_orders(request_id=request_id).get(timeout=_ASK_TIMEOUT_S)
            orders = [self._live(accepted.order.pair, order) for order in stored]
        except Exception as exc:  # noqa: BLE001 - every failure is an answer to the caller
            _settle(placement, self._unread(accepted, f"{type(exc).__name__}: {exc}"))
            return
        _settle(placement, replay_answer(accepted, orders, trade))

    def _live(self, pair: Pair, order: Order) -> Order:
        """`order` as its pair's actor holds it now; as stored once the actor no longer does (it is final)."""
        target = self._routing.get(pair)
        if target is None:
            return order
        try:
            live: Order | None = target.get_order(order.client_order_id).get(timeout=_ASK_TIMEOUT_S)
        except pykka.ActorDeadError:  # restarting: what is stored is the best there is
            return order
        return order if live is None else live

    def _unread(self, accepted: Accepted, why: str) -> Refusal:
        """The answer when the original request's outcome could not be read: nothing new was sent, and the caller
        must not take the first order's state for the outcome (the reason it asked)."""
        request_id = accepted.order.request_id
        if self._stopped:
            message = (f"this idempotency key's request {request_id} exists, but the engine stopped before its "
                       "outcome could be read; nothing new was sent")  # fmt: skip
            return Refusal(RefusalReason.SHUTTING_DOWN, message, {"request_id": request_id})
        message = (f"this idempotency key's request {request_id} exists, but its outcome could not be read now "
                   f"({why}); nothing new was sent; retry")  # fmt: skip
        return Refusal(RefusalReason.CONFLICT, message, {"request_id": request_id, "retry": "1"})
