"""A call back from its retry backoff, or a create back from its write-ahead gate, takes a slot again the way a
queued request does: in priority order with the queue, never past the in-flight cap.

Both lend their slot while they wait; many coming back at once (every lookup of a restart failing once in an
outage, a stalled commit's creates) all went out together, past the cap, and ahead of the cancels queued then.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from typing import Any

import ccxt

from actors.gateway import GatewayCore
from engine.clock import ManualClock
from engine.domain import Priority
from engine.exchange import RetryLater
from engine.exchange._ratebudget import RateBudget
from engine.exchange._retry import BackoffPolicy
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.venue import ResponseHook, pass_gate
from tests.gateway._barriers import turns_until

NOW = 1_700_000_000_000
THIRTY_S = BackoffPolicy(base_s=30, cap_s=30, jitter="decorrelated")  # exactly 30 s, every time


class _CountingClient:
    """Counts the calls under way at the exchange at once. A lookup's first attempt times out (retried); every
    call that gets through is held until `release` is set, unless its key is in `quick`."""

    def __init__(self, hook: ResponseHook) -> None:
        self.options: dict[str, Any] = {}
        self.tries: dict[str, int] = {}
        self.active = self.peak = 0
        self.order: list[str] = []  # the keys of the calls that got through, in the order they did
        self.quick: set[str] = set()
        self.release = asyncio.Event()

    async def _through(self, key: str) -> None:
        self.order.append(key)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if key not in self.quick:
                await self.release.wait()
        finally:
            self.active -= 1

    async def private_get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        cid = params["origClientOrderId"]
        self.tries[cid] = self.tries.get(cid, 0) + 1
        if self.tries[cid] == 1 and not cid.startswith("ok-"):
            raise ccxt.RequestTimeout("binance GET https://api.binance.com/api/v3/order timed out")
        await self._through(cid)
        return {"clientOrderId": cid, "status": "NEW"}

    async def private_delete_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        await self._through(params["origClientOrderId"])
        return {"origClientOrderId": params["origClientOrderId"], "status": "CANCELED"}

    async def private_post_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        await pass_gate()
        await self._through(params["newClientOrderId"])
        return {"clientOrderId": params["newClientOrderId"], "status": "NEW"}

    async def close(self) -> None:
        return None


def _core(clients: list[_CountingClient], clock: ManualClock, max_in_flight: int) -> GatewayCore:
    def factory(hook: ResponseHook) -> _CountingClient:
        clients.append(_CountingClient(hook))
        return clients[-1]

    return GatewayCore(factory, clock=clock, budget=RateBudget(()), backoff=THIRTY_S, max_in_flight=max_in_flight)


def _under_way(core: GatewayCore, clients: list[_CountingClient]) -> int:
    """Calls at the client or queued for a slot."""
    return clients[0].active + core.stats().queued


def _fetch(cid: str, priority: Priority, results: list[GatewayResult]) -> GatewayRequest:
    params = {"origClientOrderId": cid}
    return GatewayRequest(Op.FETCH_ORDER, params, priority, key=cid, reply_to=results.append)


def _cancel(cid: str, results: list[GatewayResult]) -> GatewayRequest:
    params = {"origClientOrderId": cid}
    return GatewayRequest(Op.CANCEL_ORDER, params, Priority.CANCEL, key=cid, reply_to=results.append)


def test_lookups_back_from_their_backoff_together_never_exceed_the_cap() -> None:
    # The review's case: 20 lookups, one slot, each fails once; they all came back at once, 20 at the client.
    clock = ManualClock(NOW)
    clients: list[_CountingClient] = []
    results: list[GatewayResult] = []

    async def run() -> None:
        core = _core(clients, clock, max_in_flight=1)
        await core.start(sync_time=False)
        for i in range(20):
            core.enqueue(_fetch(f"bx-{i}", Priority.ENTRY, results))
        deadlines = await asyncio.wait_for(core.wait_retrying(20), 5)  # each lent its slot to the next in turn
        assert core.stats().in_flight == 20 and core.stats().queued == 0
        clock.set(max(deadlines))
        await turns_until(lambda: core.stats().retrying == 0 and _under_way(core, clients) == 20, "all back")
        stats = core.stats()
        assert (clients[0].active, stats.in_flight, stats.queued) == (1, 1, 19)  # the others wait in the queue
        clients[0].release.set()
        await asyncio.wait_for(core.wait_idle(), 5)
        await core.close()

    asyncio.run(run())
    assert clients[0].peak == 1, f"{clients[0].peak} calls at once with one slot"
    # FIFO within their level, by when each was first queued.
    assert clients[0].order == [f"bx-{i}" for i in range(20)]
    assert len(results) == 20 and all(r.ok and r.attempts == 2 for r in results)


def test_a_cancel_queued_while_retries_wait_for_a_slot_goes_before_them() -> None:
    clock = ManualClock(NOW)
    clients: list[_CountingClient] = []
    results: list[GatewayResult] = []

    async def run() -> None:
        core = _core(clients, clock, max_in_flight=1)
        await core.start(sync_time=False)
        for i in range(3):
            core.enqueue(_fetch(f"bx-{i}", Priority.FALLBACK, results))
        await asyncio.wait_for(core.wait_retrying(3), 5)
        core.enqueue(_fetch("ok-busy", Priority.ENTRY, results))  # takes the slot lent meanwhile, and holds it
        await turns_until(lambda: clients[0].order == ["ok-busy"], "a lookup holds the one slot")
        clock.advance(30_000)  # the retries wait for the slot now
        await turns_until(lambda: core.stats().retrying == 0 and _under_way(core, clients) == 4, "retries back")
        core.enqueue(_cancel("bx-cancel", results))
        clients[0].quick.update({"ok-busy", "bx-cancel", "bx-0", "bx-1", "bx-2"})
        clients[0].release.set()
        await asyncio.wait_for(core.wait_idle(), 5)
        await core.close()

    asyncio.run(run())
    assert clients[0].order == ["ok-busy", "bx-cancel", "bx-0", "bx-1", "bx-2"]
    assert clients[0].peak == 1


def test_a_returning_retry_keeps_its_priority_against_the_queue() -> None:
    # Back from its backoff, a fallback's lookup goes after the cancels queued meanwhile and before the entries,
    # even those queued before it came back.
    clock = ManualClock(NOW)
    clients: list[_CountingClient] = []
    results: list[GatewayResult] = []

    async def run() -> None:
        core = _core(clients, clock, max_in_flight=1)
        await core.start(sync_time=False)
        core.enqueue(_fetch("bx-fallback", Priority.FALLBACK, results))
        await asyncio.wait_for(core.wait_retrying(1), 5)
        core.enqueue(_fetch("ok-busy", Priority.ENTRY, results))
        await turns_until(lambda: clients[0].order == ["ok-busy"], "a lookup holds the one slot")
        core.enqueue(_fetch("ok-entry", Priority.ENTRY, results))  # queued before the retry comes back
        clock.advance(30_000)
        await turns_until(lambda: core.stats().retrying == 0 and _under_way(core, clients) == 3, "the retry back")
        core.enqueue(_cancel("bx-cancel", results))
        clients[0].quick.update({"ok-busy", "ok-entry", "bx-cancel", "bx-fallback"})
        clients[0].release.set()
        await asyncio.wait_for(core.wait_idle(), 5)
        await core.close()

    asyncio.run(run())
    assert clients[0].order == ["ok-busy", "bx-cancel", "bx-fallback", "ok-entry"]


def test_a_stop_while_a_retry_waits_for_a_slot_answers_it_at_once() -> None:
    clock = ManualClock(NOW)
    clients: list[_CountingClient] = []
    results: list[GatewayResult] = []

    async def run() -> None:
        core = _core(clients, clock, max_in_flight=1)
        await core.start(sync_time=False)
        core.enqueue(_fetch("bx-a", Priority.FALLBACK, results))
        await asyncio.wait_for(core.wait_retrying(1), 5)
        core.enqueue(_fetch("ok-busy", Priority.ENTRY, results))
        await turns_until(lambda: clients[0].order == ["ok-busy"], "a lookup holds the one slot")
        clock.advance(30_000)
        await turns_until(lambda: core.stats().retrying == 0 and _under_way(core, clients) == 2, "the retry back")
        assert core.stats().queued == 1  # it waits for the slot
        closing = asyncio.ensure_future(core.close())
        await turns_until(lambda: len(results) == 1, "the waiting retry was answered")
        clients[0].release.set()
        await asyncio.wait_for(closing, 5)

    asyncio.run(run())
    [answered, busy] = results
    assert answered.request.key == "bx-a" and isinstance(answered.error, RetryLater) and answered.attempts == 1
    assert busy.ok and clients[0].order == ["ok-busy"]  # the retry was not sent again


def _gated_create(cid: str, gate: concurrent.futures.Future[None], results: list[GatewayResult]) -> GatewayRequest:
    params = {"newClientOrderId": cid}
    return GatewayRequest(Op.CREATE_ORDER, params, Priority.ENTRY, key=cid, reply_to=results.append, gate=gate)


def test_creates_back_from_their_gates_together_never_exceed_the_cap() -> None:
    # One commit for many creates (a stalled database, a batch): each parked at its gate lending its slot, so
    # the next was admitted and parked too; when the commit ended they all left at once, past the cap.
    clock = ManualClock(NOW)
    clients: list[_CountingClient] = []
    results: list[GatewayResult] = []

    async def run() -> None:
        core = _core(clients, clock, max_in_flight=2)
        await core.start(sync_time=False)
        commit: concurrent.futures.Future[None] = concurrent.futures.Future()
        for i in range(10):
            core.enqueue(_gated_create(f"bx-{i}", commit, results))
        await turns_until(lambda: core._parked == 10, "all parked at their gates")
        commit.set_result(None)
        await turns_until(lambda: core._parked == 0 and _under_way(core, clients) == 10, "all back")
        assert (clients[0].active, core.stats().queued) == (2, 8)  # the others wait for a slot, in the queue
        core.enqueue(_cancel("bx-cancel", results))  # goes before the creates still waiting for a slot
        clients[0].release.set()
        await asyncio.wait_for(core.wait_idle(), 5)
        await core.close()

    asyncio.run(run())
    assert clients[0].peak == 2, f"{clients[0].peak} calls at once with two slots"
    assert clients[0].order == ["bx-0", "bx-1", "bx-cancel"] + [f"bx-{i}" for i in range(2, 10)]
    assert len(results) == 11 and all(r.ok for r in results)
