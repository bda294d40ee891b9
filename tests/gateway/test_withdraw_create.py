"""`withdraw_create`: a caller canceled a request whose create still waits in the gateway (found by a hands-on
review: a create held by a Retry-After went out when the hold ended, and a market order canceled meanwhile was
filled). A create not sent yet — queued, or held at its write-ahead gate — is answered `CANCELED_BEFORE_SENT` and
never leaves; one already sent, and every other create, go on as usual."""

from __future__ import annotations

import asyncio
import concurrent.futures

from actors.gateway import GatewayCore
from engine.clock import ManualClock
from engine.domain import Priority
from engine.exchange import Rejected
from engine.exchange._ratebudget import LimitKind, RateBudget, RateLimit
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.venue import CANCELED_BEFORE_SENT
from tests.gateway._barriers import turns_until
from tests.gateway._gated import NEAR_BOUNDARY
from tests.gateway.test_gate_holds import _SendingClient


def test_a_withdrawn_create_never_leaves_and_the_others_go_on() -> None:
    clock = ManualClock(NEAR_BOUNDARY - NEAR_BOUNDARY % 10_000)
    clients: list[_SendingClient] = []
    answers: dict[str, GatewayResult] = {}

    def request(cid: str, gate: concurrent.futures.Future[None]) -> GatewayRequest:
        reply = lambda r: answers.__setitem__(cid, r)  # noqa: E731
        return GatewayRequest(Op.CREATE_ORDER, {"newClientOrderId": cid}, Priority.ENTRY, key=cid, reply_to=reply,
                              gate=gate)  # fmt: skip

    async def run() -> GatewayCore:
        budget = RateBudget((RateLimit(LimitKind.ORDERS, 10_000, 2),), margin=0)
        core = GatewayCore(lambda hook: clients.append(_SendingClient(hook)) or clients[-1], clock=clock,
                           budget=budget)  # fmt: skip
        await core.start(sync_time=False)
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        done.set_result(None)
        stalled: concurrent.futures.Future[None] = concurrent.futures.Future()
        core.enqueue(request("sent-1", done))
        core.enqueue(request("at-gate", stalled))  # admitted, waits for its commit
        for n in range(3):  # the order window is full: these wait in the queue
            core.enqueue(request(f"queued-{n}", done))
        await turns_until(lambda: "sent-1" in answers and core._parked == 1, "one sent, one at its gate")
        for cid in ("queued-1", "at-gate", "sent-1", "never-handed-over"):
            core.withdraw_create(cid)
        stalled.set_result(None)  # its commit ends after the withdrawal: it does not leave
        clock.advance(10_300)  # into the next window (past its first 200 ms): the creates still queued go
        core.wake()
        await asyncio.wait_for(core.wait_idle(), 10)
        await core.close()
        return core

    core = asyncio.run(run())
    assert clients[0].left == ["sent-1", "queued-0", "queued-2"]
    for cid in ("queued-1", "at-gate"):
        error = answers[cid].error
        assert isinstance(error, Rejected) and str(error) == CANCELED_BEFORE_SENT, (cid, answers[cid])
    assert all(answers[c].error is None for c in ("sent-1", "queued-0", "queued-2"))
    assert not core.withdrawing and not any(c in core.pending_creates for c in answers)
