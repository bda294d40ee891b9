"""A request withdrawn while queued (`conflict_policy = "queue"`, canceled before it started) keeps its idempotency
key: a retry of the same key — an HTTP client retrying the POST that timed out (504) while the request waited —
gets the withdrawal again. Before, the key was forgotten and the retry queued a new request, which traded once the
pair was free: the caller's cancel undone by its own retry."""

from __future__ import annotations

from engine.api import CancelStatus, Refusal, RefusalReason
from engine.domain import RequestId, Side
from engine.gateway import Op
from engine.pair import WithdrawnKeys
from tests.pair._book_helpers import Harness, request


def _creates(h: Harness) -> int:
    return sum(1 for r in h.sent if r.op is Op.CREATE_ORDER)


def test_a_retry_of_a_withdrawn_key_is_answered_withdrawn_and_nothing_is_sent() -> None:
    h = Harness(conflict_policy="queue")
    h.place(request(key="first"))
    queued = request(side=Side.SELL, key="third")
    assert h.place(queued) is None  # queued: no answer yet
    commands, outcome = h.book.cancel_request(queued.request_id, h.now)
    h.run(commands)
    assert outcome is not None and outcome.status is CancelStatus.WITHDRAWN
    retry = request(side=Side.SELL, key="third")
    answer = h.place(retry)
    assert isinstance(answer, Refusal) and answer.reason is RefusalReason.CANCELED, answer
    assert answer.details["request_id"] == queued.request_id
    assert f"request {queued.request_id} of this idempotency key was canceled before it started" in answer.message
    assert _creates(h) == 1  # the first request's only
    assert len(h.book.active()) == 1  # the retry is not queued


def test_the_withdrawn_key_used_for_another_request_is_a_conflict() -> None:
    h = Harness(conflict_policy="queue")
    h.place(request(key="first"))
    queued = request(side=Side.SELL, key="third")
    h.place(queued)
    h.run(h.book.cancel_request(queued.request_id, h.now)[0])
    other = h.place(request(amount="0.02", side=Side.SELL, key="third"))
    assert isinstance(other, Refusal) and other.reason is RefusalReason.CONFLICT and "amount" in other.message


def test_the_memory_of_withdrawn_keys_is_bounded() -> None:
    keys = WithdrawnKeys(capacity=2)
    refusal = Refusal(RefusalReason.CANCELED, "canceled before it started; nothing was sent")
    first, second, third = (request(key=k) for k in ("a", "b", "c"))
    for r in (first, second, third):
        keys.add(r, refusal)
    assert keys.answer(request(key="a")) is None  # the oldest forgotten
    again = keys.answer(request(key="c"))
    assert again is not None and again.details["request_id"] == RequestId(third.request_id)
