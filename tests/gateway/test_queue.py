"""The gateway's priority queue: cancels first, then fallbacks, exits, entries; FIFO within a level."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.domain import Priority
from engine.gateway import GatewayRequest, Op, RequestQueue


@given(st.lists(st.sampled_from(list(Priority)), max_size=200))
def test_pops_by_priority_then_fifo(priorities: list[Priority]) -> None:
    queue = RequestQueue()
    for i, priority in enumerate(priorities):
        queue.push(GatewayRequest(Op.FETCH_ORDER, priority=priority, key=str(i)))
    assert queue.depth() == len(priorities)
    popped = [queue.pop() for _ in range(len(priorities))]
    assert [(int(r.priority), int(r.key)) for r in popped] == sorted((int(p), i) for i, p in enumerate(priorities))


def test_cancel_overtakes_a_backlog_of_entries() -> None:
    queue = RequestQueue()
    for i in range(500):
        queue.push(GatewayRequest(Op.CREATE_ORDER, priority=Priority.ENTRY, key=f"entry-{i}"))
    queue.push(GatewayRequest(Op.CREATE_ORDER, priority=Priority.FALLBACK, key="fallback"))
    queue.push(GatewayRequest(Op.CANCEL_ORDER, priority=Priority.CANCEL, key="cancel"))
    assert queue.depth(Priority.ENTRY) == 500
    assert [queue.pop().key for _ in range(3)] == ["cancel", "fallback", "entry-0"]


def test_push_front_keeps_the_turn() -> None:
    queue = RequestQueue()
    first = GatewayRequest(Op.CREATE_ORDER, key="a")
    queue.push(first)
    queue.push(GatewayRequest(Op.CREATE_ORDER, key="b"))
    queue.push_front(queue.pop())
    assert queue.peek() == first


@given(st.lists(st.tuples(st.sampled_from(list(Priority)), st.booleans()), max_size=100))
def test_creates_and_the_rest_keep_one_order_and_the_rest_can_be_taken_past_creates(
    items: list[tuple[Priority, bool]],
) -> None:
    queue = RequestQueue()
    for i, (priority, create) in enumerate(items):
        queue.push(GatewayRequest(Op.CREATE_ORDER if create else Op.CANCEL_ORDER, priority=priority, key=str(i)))
    order = sorted(range(len(items)), key=lambda i: (int(items[i][0]), i))
    others = [i for i in order if not items[i][1]]
    if others:
        assert queue.peek(creates=False) is not None and queue.peek(creates=False).key == str(others[0])
        assert queue.pop(creates=False).key == str(others[0])
        order.remove(others[0])
    assert [int(queue.pop().key) for _ in range(len(queue))] == order
