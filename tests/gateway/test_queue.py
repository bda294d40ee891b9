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


@given(
    st.lists(st.tuples(st.sampled_from(list(Priority)), st.booleans()), min_size=1, max_size=60),
    st.data(),
)
def test_a_request_queued_again_at_its_turn_keeps_its_first_place(
    items: list[tuple[Priority, bool]], data: st.DataObject
) -> None:
    # A retry back from its backoff, a create back from its gate: popped, then queued again with its turn, it
    # goes where it would have gone had it never left, however many were queued meanwhile.
    queue: RequestQueue[str] = RequestQueue()
    half = len(items) // 2
    for i, (priority, create) in enumerate(items[:half]):
        queue.push(GatewayRequest(Op.CREATE_ORDER if create else Op.FETCH_ORDER, priority=priority, key=str(i)))
    taken = data.draw(st.integers(0, half))
    away = []
    for _ in range(taken):
        head = queue.head()
        assert head is not None and head.waiter is None and queue.pop() is head.request
        away.append((head.request, head.turn))
    for i, (priority, create) in enumerate(items[half:], start=half):  # queued while those were away
        queue.push(GatewayRequest(Op.CREATE_ORDER if create else Op.FETCH_ORDER, priority=priority, key=str(i)))
    for request, turn in data.draw(st.permutations(away)):
        queue.requeue(request, turn, f"waiter-{request.key}")
    order = sorted(range(len(items)), key=lambda i: (int(items[i][0]), i))
    popped = []
    while (head := queue.head()) is not None:
        was_away = any(request is head.request for request, _ in away)
        assert head.waiter == (f"waiter-{head.request.key}" if was_away else None)
        popped.append(int(queue.pop().key))
    assert popped == order and queue.depth() == 0


def test_a_request_queued_again_can_be_discarded_by_its_waiter() -> None:
    queue: RequestQueue[object] = RequestQueue()
    for key in ("a", "b", "c"):
        queue.push(GatewayRequest(Op.FETCH_ORDER, priority=Priority.ENTRY, key=key))
    head = queue.head()
    assert head is not None and queue.pop().key == "a"
    waiter = object()
    queue.requeue(head.request, head.turn, waiter)
    assert queue.depth(Priority.ENTRY) == 3 and queue.peek() == head.request
    assert queue.discard(waiter) and not queue.discard(waiter)
    assert queue.depth(Priority.ENTRY) == 2 and [queue.pop().key for _ in range(2)] == ["b", "c"]
