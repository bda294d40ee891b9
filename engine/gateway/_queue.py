"""The gateway's priority queue: cancels, then fallbacks, then exits, then entries; FIFO within a level."""

from __future__ import annotations

import heapq
import itertools
from collections import Counter

from engine.domain import Priority
from engine.gateway._ops import GatewayRequest

__all__ = ["RequestQueue"]


class RequestQueue:
    """Pure priority queue of gateway requests (one owner: the gateway's loop)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, GatewayRequest]] = []
        self._seq = itertools.count()
        self._depth: Counter[Priority] = Counter()

    def push(self, request: GatewayRequest) -> None:
        """Queue a request behind others of its priority."""
        heapq.heappush(self._heap, (int(request.priority), next(self._seq), request))
        self._depth[request.priority] += 1

    def push_front(self, request: GatewayRequest) -> None:
        """Put back a request that could not be sent yet, ahead of its level (it keeps its turn)."""
        heapq.heappush(self._heap, (int(request.priority), -next(self._seq), request))
        self._depth[request.priority] += 1

    def peek(self) -> GatewayRequest | None:
        """The next request, without removing it."""
        return self._heap[0][2] if self._heap else None

    def pop(self) -> GatewayRequest:
        """Remove and return the next request; IndexError when empty."""
        _, _, request = heapq.heappop(self._heap)
        self._depth[request.priority] -= 1
        return request

    def depth(self, priority: Priority | None = None) -> int:
        """Queued requests, in total or at one level."""
        return len(self._heap) if priority is None else self._depth[priority]

    def __len__(self) -> int:
        return len(self._heap)
