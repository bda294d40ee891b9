"""What a caller's cancel did, in the caller's words (`CancelOutcome`): read off the book once it has run. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from engine.api import CancelOutcome, CancelStatus
from engine.domain import OrderStatus, Pair, RequestId
from engine.gateway import Op
from engine.pair._commands import CancelAhead, Command, Send
from engine.pair._legs import Execution, Leg, Stage

__all__ = ["cancel_answer", "loose_cancel_answer"]

_RESTING = frozenset({OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL})
"""At the exchange, acknowledged: its cancel is queued now, was by an earlier cancel, or waits for its retry."""
_NOT_ACKED = frozenset({OrderStatus.PENDING_SUBMIT, OrderStatus.SUBMITTED})
"""Its create is not answered yet: a cancel overtaking it would find nothing, so it goes out at the ack."""


def cancel_answer(
    execution: Execution, legs: Sequence[Leg], commands: Sequence[Command], *, ended_now: bool
) -> CancelOutcome:
    """What canceling `execution` did: `legs` are its orders after the cancel ran, `commands` what the cancel
    produced, `ended_now` False when the request had finished before the cancel (nothing was run)."""
    request = execution.request
    pair, request_id = request.pair, request.request_id
    if execution.plan is None:
        return CancelOutcome(CancelStatus.WITHDRAWN, pair, request_id, "the request was queued behind another "
                             "request of its pair and is withdrawn; nothing was sent")  # fmt: skip
    if execution.stage in (Stage.SETTLING, Stage.DONE):
        final = execution.result.status if execution.result is not None else None
        said = final.value if final is not None else "over"
        if ended_now:
            message = f"nothing was resting at the exchange: the request ended here ({said}); nothing more is sent"
            return CancelOutcome(CancelStatus.WITHDRAWN, pair, request_id, message, final_status=final)
        message = f"the request had already finished ({said}); nothing was sent"
        return CancelOutcome(CancelStatus.ALREADY_DONE, pair, request_id, message, final_status=final)
    sent_now = {c.request.key for c in commands if isinstance(c, Send) and c.request.op is Op.CANCEL_ORDER}
    sent_now |= {c.send.key for c in commands if isinstance(c, CancelAhead)}
    live = [leg for leg in legs if not leg.terminal]
    resting = tuple(leg.cid for leg in live if leg.state.status in _RESTING)
    at_ack = tuple(leg.cid for leg in live if leg.state.status in _NOT_ACKED)
    later = f"; {', '.join(at_ack)} canceled at the exchange's ack" if at_ack else ""
    if resting:
        how = "queued to the exchange" if sent_now else "already under way (an earlier cancel, or its retry)"
        message = f"cancel of {', '.join(resting)} {how}{later}; no fallback follows"
        return CancelOutcome(CancelStatus.CANCEL_SENT, pair, request_id, message, resting, at_ack)
    if at_ack:
        message = (f"the exchange has not acknowledged {', '.join(at_ack)} yet: withdrawn if it has not left the "
                   "engine (nothing is sent), else canceled at its ack; no fallback follows")  # fmt: skip
        return CancelOutcome(CancelStatus.CANCEL_AT_ACK, pair, request_id, message, (), at_ack)
    # Not seen in practice (an aborted plan with nothing live has finished): said as it is rather than guessed.
    message = "the request is ending with nothing resting at the exchange; no fallback follows"
    return CancelOutcome(CancelStatus.CANCEL_SENT, pair, request_id, message)


def loose_cancel_answer(
    pair: Pair, request_id: RequestId, legs: Sequence[Leg], commands: Sequence[Command]
) -> CancelOutcome:
    """What canceling the open `legs` of request `request_id`, no longer executing, did (`PairBook._cancel_loose`):
    each is resting (its cancel queued now, or under way) or not yet acknowledged (canceled at its ack)."""
    sent_now = {c.request.key for c in commands if isinstance(c, Send) and c.request.op is Op.CANCEL_ORDER}
    resting = tuple(leg.cid for leg in legs if leg.state.status in _RESTING)
    at_ack = tuple(leg.cid for leg in legs if leg.state.status in _NOT_ACKED)
    over = f"request {request_id} is over, but its order(s) were still open"
    if not resting:
        message = f"{over}: the exchange has not acknowledged {', '.join(at_ack)} yet; canceled at its ack"
        return CancelOutcome(CancelStatus.CANCEL_AT_ACK, pair, request_id, message, (), at_ack)
    how = "queued to the exchange" if sent_now & set(resting) else "already under way"
    later = f"; {', '.join(at_ack)} canceled at the exchange's ack" if at_ack else ""
    message = f"{over}: cancel of {', '.join(resting)} {how}{later}"
    return CancelOutcome(CancelStatus.CANCEL_SENT, pair, request_id, message, resting, at_ack)
