"""`close_creates`: once the engine begins to stop no create leaves — those queued behind a full order window,
held at their write-ahead gate, or handed over later are answered "not sent" at once (a definite rejection: their
book closes them as never sent) — while the creates already sent, and every cancel, go on. Before, creates held
back by the order-rate limit went out up to 25 s into `Engine.stop()`, after the user stream had stopped."""

from __future__ import annotations

import asyncio
import concurrent.futures

from actors.gateway import GatewayCore
from engine.clock import ManualClock
from engine.domain import Priority
from engine.exchange import Rejected
from engine.exchange._ratebudget import LimitKind, RateBudget, RateLimit
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.venue import WITHDRAWN_AT_STOP
from tests.gateway._barriers import turns_until
from tests.gateway._gated import NEAR_BOUNDARY
from tests.gateway.test_gate_holds import _SendingClient


def test_no_create_leaves_once_creates_are_closed_and_each_is_answered_not_sent() -> None:
    clock = ManualClock(NEAR_BOUNDARY - NEAR_BOUNDARY % 10_000)
    clients: list[_SendingClient] = []
    answers: dict[str, GatewayResult] = {}

    def request(op: Op, cid: str, gate: concurrent.futures.Future[None] | None = None) -> GatewayRequest:
        reply = lambda r: answers.__setitem__(cid, r)  # noqa: E731
        return GatewayRequest(op, {"newClientOrderId": cid, "origClientOrderId": cid}, Priority.ENTRY, key=cid,
                              reply_to=reply, gate=gate)  # fmt: skip

    async def run() -> GatewayCore:
        budget = RateBudget((RateLimit(LimitKind.ORDERS, 10_000, 2),), margin=0)
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1], clock=clock,
                           budget=budget)  # fmt: skip
        await core.start(sync_time=False)
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        done.set_result(None)
        stalled: concurrent.futures.Future[None] = concurrent.futures.Future()
        core.enqueue(request(Op.CREATE_ORDER, "sent-1", done))
        core.enqueue(request(Op.CREATE_ORDER, "at-gate", stalled))  # admitted, waits for its commit
        for n in range(3):  # the order window is full: these wait in the queue
            core.enqueue(request(Op.CREATE_ORDER, f"queued-{n}", done))
        await turns_until(lambda: "sent-1" in answers and core._parked == 1, "one sent, one at its gate")
        core.close_creates()
        core.enqueue(request(Op.CREATE_ORDER, "later", done))  # handed over after the stop began
        core.enqueue(request(Op.CANCEL_ORDER, "sent-1"))  # a cancel still goes
        core.enqueue(request(Op.CANCEL_ORDER, "gated-cancel", done))  # one stored before it leaves, too
        stalled.set_result(None)  # its commit ends after the stop began: it does not leave either
        clock.advance(10_000)  # the next window: nothing queued is left to take it
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return core

    core = asyncio.run(run())
    assert clients[0].left == ["sent-1"]
    withdrawn = ["at-gate", "queued-0", "queued-1", "queued-2", "later"]
    for cid in withdrawn:
        error = answers[cid].error
        assert isinstance(error, Rejected) and str(error) == WITHDRAWN_AT_STOP, (cid, answers[cid])
    assert answers["sent-1"].error is None and answers["sent-1"].request.op is Op.CANCEL_ORDER  # its cancel's answer
    assert answers["gated-cancel"].error is None
    assert not any(cid in core.pending_creates for cid in ["sent-1", *withdrawn])  # none held: nothing to wait for
