"""The gateway's priority queue: cancels, then fallbacks, then exits, then entries; FIFO within a level.

Creates and the other requests are kept in two heaps ordered by one shared sequence, so that together they
give the same order as one queue, while the requests other than creates can also be taken on their own: a
create held only by the order-count limit must not hold back the cancels and lookups queued behind it.

A request already under way that lent its in-flight slot (a retry waiting out its backoff, a create waiting at
its write-ahead gate) waits for a slot again here, with a waiter of its owner's (`requeue`): at its priority,
and within its level at the turn it was first queued with, so it goes before the requests of its level queued
after it first was. FIFO by first arrival rather than by return: a call that already waited its backoff does not
also wait behind everything that came meanwhile, and many coming back at once keep their first order.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from typing import Generic, NamedTuple, TypeVar

from engine.domain import Priority
from engine.gateway._ops import GatewayRequest, Op

__all__ = ["Queued", "RequestQueue"]

W = TypeVar("W")


class Queued(NamedTuple, Generic[W]):
    """The request at the head of the queue (`RequestQueue.head`)."""

    request: GatewayRequest
    turn: int
    """Its place within its level (lower first); give it back to `requeue` to wait again at the same place."""
    waiter: W | None
    """None for a request not sent yet; for one under way, the waiter `requeue` was given."""


_Entry = tuple[int, int, Queued[W]]


class RequestQueue(Generic[W]):
    """Pure priority queue of gateway requests (one owner: the gateway's loop)."""

    def __init__(self) -> None:
        self._creates: list[_Entry[W]] = []
        self._others: list[_Entry[W]] = []
        self._seq = itertools.count()
        self._depth: Counter[Priority] = Counter()

    def _heap_of(self, request: GatewayRequest) -> list[_Entry[W]]:
        return self._creates if request.op is Op.CREATE_ORDER else self._others

    def _push(self, request: GatewayRequest, turn: int, waiter: W | None) -> None:
        heapq.heappush(self._heap_of(request), (int(request.priority), turn, Queued(request, turn, waiter)))
        self._depth[request.priority] += 1

    def push(self, request: GatewayRequest) -> None:
        """Queue a request behind others of its priority."""
        self._push(request, next(self._seq), None)

    def push_front(self, request: GatewayRequest) -> None:
        """Put back a request that could not be sent yet, ahead of its level (it keeps its turn)."""
        self._push(request, -next(self._seq), None)

    def requeue(self, request: GatewayRequest, turn: int, waiter: W) -> None:
        """Queue again a request under way (popped with `turn`) to wait for a slot, at its first place: before
        the requests of its level queued after it first was, behind those of higher levels (module docstring)."""
        self._push(request, turn, waiter)

    def discard(self, waiter: W) -> bool:
        """Remove the request queued again with `waiter` (it stopped waiting); False if it is not queued."""
        for heap in (self._creates, self._others):
            for i, (_, _, queued) in enumerate(heap):
                if queued.waiter is waiter:
                    heap[i] = heap[-1]
                    heap.pop()
                    heapq.heapify(heap)
                    self._depth[queued.request.priority] -= 1
                    return True
        return False

    def take_creates(self, key: str | None = None) -> list[GatewayRequest]:
        """Remove and return the creates not sent yet (those for client order id `key` only, when given), in queue
        order (a create under way, queued again for a slot with a waiter, stays: its owner answers it)."""

        def taken_now(e: _Entry[W]) -> bool:
            return e[2].waiter is None and (key is None or e[2].request.key == key)

        taken = sorted(e for e in self._creates if taken_now(e))
        self._creates = [e for e in self._creates if not taken_now(e)]
        heapq.heapify(self._creates)
        for _, _, queued in taken:
            self._depth[queued.request.priority] -= 1
        return [queued.request for _, _, queued in taken]

    def take_every_create(self) -> list[Queued[W]]:
        """Remove and return every queued create, those under way back for a slot (with a waiter) included, in
        queue order."""
        taken, self._creates = sorted(self._creates), []
        for _, _, queued in taken:
            self._depth[queued.request.priority] -= 1
        return [queued for _, _, queued in taken]

    def _next_heap(self, creates: bool) -> list[_Entry[W]] | None:
        others = self._others
        if not creates or not self._creates:
            return others or None
        if not others:
            return self._creates
        c, o = self._creates[0], others[0]  # (priority, turn): never equal, the turns are one sequence
        return self._creates if c[0] < o[0] or (c[0] == o[0] and c[1] < o[1]) else others

    def head(self, *, creates: bool = True) -> Queued[W] | None:
        """The next request with its turn and waiter, without removing it (`creates` as for `peek`)."""
        heap = self._next_heap(creates)
        return heap[0][2] if heap else None

    def peek(self, *, creates: bool = True) -> GatewayRequest | None:
        """The next request, without removing it; with `creates=False`, the next one that is not a create."""
        heap = self._next_heap(creates)
        return heap[0][2].request if heap else None

    def pop(self, *, creates: bool = True) -> GatewayRequest:
        """Remove and return the request `peek` shows (same `creates`); IndexError when there is none."""
        heap = self._next_heap(creates)
        if heap is None:
            raise IndexError("pop from an empty request queue")
        _, _, queued = heapq.heappop(heap)
        self._depth[queued.request.priority] -= 1
        return queued.request

    def depth(self, priority: Priority | None = None) -> int:
        """Queued requests, in total or at one level."""
        return len(self) if priority is None else self._depth[priority]

    def __len__(self) -> int:
        return len(self._creates) + len(self._others)
