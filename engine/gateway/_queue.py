"""The gateway's priority queue: cancels, then fallbacks, then exits, then entries; FIFO within a level.

Creates and the other requests are kept in two heaps ordered by one shared sequence, so that together they
give the same order as one queue, while the requests other than creates can also be taken on their own: a
create held only by the order-count limit must not hold back the cancels and lookups queued behind it.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter

from engine.domain import Priority
from engine.gateway._ops import GatewayRequest, Op

__all__ = ["RequestQueue"]

_Entry = tuple[int, int, GatewayRequest]


class RequestQueue:
    """Pure priority queue of gateway requests (one owner: the gateway's loop)."""

    def __init__(self) -> None:
        self._creates: list[_Entry] = []
        self._others: list[_Entry] = []
        self._seq = itertools.count()
        self._depth: Counter[Priority] = Counter()

    def _heap_of(self, request: GatewayRequest) -> list[_Entry]:
        return self._creates if request.op is Op.CREATE_ORDER else self._others

    def push(self, request: GatewayRequest) -> None:
        """Queue a request behind others of its priority."""
        heapq.heappush(self._heap_of(request), (int(request.priority), next(self._seq), request))
        self._depth[request.priority] += 1

    def push_front(self, request: GatewayRequest) -> None:
        """Put back a request that could not be sent yet, ahead of its level (it keeps its turn)."""
        heapq.heappush(self._heap_of(request), (int(request.priority), -next(self._seq), request))
        self._depth[request.priority] += 1

    def _next_heap(self, creates: bool) -> list[_Entry] | None:
        others = self._others
        if not creates or not self._creates:
            return others or None
        if not others:
            return self._creates
        c, o = self._creates[0], others[0]  # (priority, sequence): never equal, the sequence is shared
        return self._creates if c[0] < o[0] or (c[0] == o[0] and c[1] < o[1]) else others

    def peek(self, *, creates: bool = True) -> GatewayRequest | None:
        """The next request, without removing it; with `creates=False`, the next one that is not a create."""
        heap = self._next_heap(creates)
        return heap[0][2] if heap else None

    def pop(self, *, creates: bool = True) -> GatewayRequest:
        """Remove and return the request `peek` shows (same `creates`); IndexError when there is none."""
        heap = self._next_heap(creates)
        if heap is None:
            raise IndexError("pop from an empty request queue")
        _, _, request = heapq.heappop(heap)
        self._depth[request.priority] -= 1
        return request

    def depth(self, priority: Priority | None = None) -> int:
        """Queued requests, in total or at one level."""
        return len(self) if priority is None else self._depth[priority]

    def __len__(self) -> int:
        return len(self._creates) + len(self._others)
