"""What a caller hears when a request does not end in an accepted primary order, or is replayed. Pure."""

from __future__ import annotations

from collections import OrderedDict

from engine.api import Accepted, PlaceOutcome, Refusal, RefusalReason
from engine.domain import ClientOrderId, Order, OrderRequest, OrderStatus
from engine.execution import ExecutionResult, ResultReason
from engine.venue import HELD_PAST_LIMIT, WITHDRAWN_AT_STOP

__all__ = ["WithdrawnKeys", "key_reused", "refusal_of", "replay_outcome"]

# A plan that ended before its primary order was accepted: why, in the Engine API's reasons.
_REFUSALS = {
    ResultReason.REFUSED_FILTER: RefusalReason.FILTER_FAILURE,
    ResultReason.DUST: RefusalReason.FILTER_FAILURE,
    ResultReason.REFUSED_NO_PRICE: RefusalReason.INVALID_REQUEST,
    ResultReason.SLIPPAGE_REFUSED: RefusalReason.RISK_LIMIT,
    ResultReason.CANCELED: RefusalReason.CANCELED,
}


def refusal_of(result: ExecutionResult, primary: ClientOrderId | None = None) -> Refusal:
    """The refusal for a caller whose request ended (per the plan's `result`) before its primary was accepted;
    exchange rejections and everything else not listed are `rejected`. Its `details` are the result's numbers
    (a filter failure's filter, field, value and bounds; a slippage refusal's prices), for code to act on, and
    the primary's `client_order_id` when one was created."""
    details = dict(result.details)
    if primary is not None:
        details["client_order_id"] = primary  # never among the result's keys (they are the plan's numbers)
    reason = _REFUSALS.get(result.reason, RefusalReason.REJECTED)
    if reason is RefusalReason.REJECTED and WITHDRAWN_AT_STOP in result.detail:
        reason = RefusalReason.SHUTTING_DOWN  # never sent: withdrawn as the engine stopped, not the exchange's no
    elif reason is RefusalReason.REJECTED and HELD_PAST_LIMIT in result.detail:
        reason = RefusalReason.HALTED  # never sent: the order limits hold new orders (halted until the hold ends)
    return Refusal(reason, result.detail, details)


def replay_outcome(order: Order) -> PlaceOutcome:
    """The answer to a replayed idempotency key whose primary order is `order` (from memory or the database):
    the same order, marked duplicate — or, if it was rejected, the same refusal (the stored order does not say
    whether by the exchange or before it was sent: its request's trade note does)."""
    if order.status is OrderStatus.REJECTED:
        return Refusal(
            RefusalReason.REJECTED,
            "this idempotency key's order was rejected (its request's trade says why)",
            {"client_order_id": order.client_order_id},
        )
    return Accepted(order, duplicate=True)


def key_reused(original: OrderRequest, replay: OrderRequest) -> Refusal | None:
    """A `conflict` when `replay` carries `original`'s idempotency key but asks for something else (pair, side,
    amount, price, type or time in force); None for a true replay. Answering the original order to a different
    request would tell its caller that an order it did not ask for is its own."""
    fields = ("pair", "side", "amount", "price", "order_type", "time_in_force")
    differ = [name for name in fields if getattr(original, name) != getattr(replay, name)]
    if not differ:
        return None
    return Refusal(
        RefusalReason.CONFLICT,
        f"this idempotency key was used for another request (its {', '.join(differ)} "
        f"{'differs' if len(differ) == 1 else 'differ'})",
        {"request_id": original.request_id},
    )


class WithdrawnKeys:
    """Idempotency keys whose request was withdrawn while queued (canceled before it started; nothing was sent),
    with that answer: a retry of the same key (an HTTP client retrying the POST that timed out while the request
    waited in the queue) gets it again instead of reviving the request the caller canceled. Kept in memory, the
    latest `capacity`: nothing of a withdrawn request was stored, so after a restart its key is new again."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[str, tuple[OrderRequest, Refusal]] = OrderedDict()

    def add(self, request: OrderRequest, refusal: Refusal) -> None:
        """Remember `request`'s key as withdrawn, answered `refusal`."""
        self._keys[request.idempotency_key] = (request, refusal)
        self._keys.move_to_end(request.idempotency_key)
        while len(self._keys) > self._capacity:
            self._keys.popitem(last=False)

    def answer(self, request: OrderRequest) -> Refusal | None:
        """The answer to `request` when its key was withdrawn (a key reused for another request is refused as
        such), else None."""
        known = self._keys.get(request.idempotency_key)
        if known is None:
            return None
        original, refusal = known
        reused = key_reused(original, request)
        if reused is not None:
            return reused
        details = {**refusal.details, "request_id": original.request_id}
        return Refusal(refusal.reason, f"request {original.request_id} of this idempotency key was {refusal.message}",
                       details)  # fmt: skip
