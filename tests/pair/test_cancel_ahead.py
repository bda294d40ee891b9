"""The pair actor's `CancelAhead`: a caller's cancel leaves only once its request is stored as canceled — or once
storing that failed, since the database may delay a cancel by one commit but never hold it back."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import pykka
import pytest

from actors._ticker import Ticker
from actors.pair import PairActor
from engine.api import Accepted
from engine.clock import ManualClock
from engine.domain import RequestRecord
from engine.execution import ExecutionConfig
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.pair import IntakeContext, PairBook, PairSettings
from tests.pair._book_helpers import PAIR, RULES, T0, order_json, request

_WAIT_S = 10.0


class _Gateway:
    def __init__(self) -> None:
        self.sent: list[GatewayRequest] = []
        self._cond = threading.Condition()

    def submit(self, request: GatewayRequest) -> None:
        with self._cond:
            self.sent.append(request)
            self._cond.notify_all()

    def holds_create(self, key: str) -> bool:
        return False  # every create here is answered by the test, or never: none is waiting in a queue

    def withdraw_create(self, key: str) -> None:
        self.withdrawn = [*getattr(self, "withdrawn", []), key]

    def wait_op(self, op: Op) -> GatewayRequest:
        with self._cond:
            assert self._cond.wait_for(lambda: any(r.op is op for r in self.sent), _WAIT_S), f"no {op} sent"
            return next(r for r in self.sent if r.op is op)


class _Store:
    """Write-aheads are durable at once, except the cancel's record: the test settles that one."""

    proxy: Any = None

    def __init__(self) -> None:
        self.held: concurrent.futures.Future[tuple[Any, Callable[[], None], Callable[[BaseException], None]]] = (
            concurrent.futures.Future()
        )

    def save_many(self, records: Sequence[Any]) -> None:
        pass

    def write_ahead_then(self, record: Any, on_durable: Any, on_failed: Any, companions: Sequence[Any] = ()) -> None:
        if isinstance(record, RequestRecord):
            self.held.set_result((record, on_durable, on_failed))
        else:
            on_durable()


@pytest.fixture
def rig() -> Iterator[tuple[Any, _Gateway, _Store]]:
    book = PairBook(PAIR, RULES, PairSettings(execution=ExecutionConfig(limit_timeout_ms=3_600_000)))
    book.on_price(Decimal("59990"), Decimal("60010"), T0)
    gateway, store = _Gateway(), _Store()
    ticker = Ticker(ManualClock(T0))
    ref = PairActor.start(book, gateway=gateway, store=store, ticker=ticker, clock=ticker.clock,
                          events=lambda _e: None, alerts=lambda _k, _m: None, intake=IntakeContext)  # fmt: skip
    proxy = ref.proxy()
    req = request()
    placed: concurrent.futures.Future[Any] = concurrent.futures.Future()
    proxy.place.defer(req, placed)
    create = gateway.wait_op(Op.CREATE_ORDER)
    proxy.on_result.defer(GatewayResult(create, data=order_json(create, "NEW")))
    assert isinstance(placed.result(_WAIT_S), Accepted)
    proxy.cancel(req.request_id).get(timeout=_WAIT_S)
    yield proxy, gateway, store
    pykka.ActorRegistry.stop_all()


def test_the_cancel_waits_at_its_gate_until_the_canceled_request_is_durable(rig: Any) -> None:
    _proxy, gateway, store = rig
    record, on_durable, _on_failed = store.held.result(_WAIT_S)
    cancel = gateway.wait_op(Op.CANCEL_ORDER)
    assert record.canceled == "canceled by the caller"
    assert cancel.gate is not None and not cancel.gate.done(), "the cancel must not leave before its record"
    on_durable()
    assert cancel.gate.result(_WAIT_S) is None


def test_a_cancel_whose_record_cannot_be_stored_leaves_anyway(rig: Any) -> None:
    _proxy, gateway, store = rig
    _record, _on_durable, on_failed = store.held.result(_WAIT_S)
    cancel = gateway.wait_op(Op.CANCEL_ORDER)
    on_failed(RuntimeError("database and spool refuse writes"))
    assert cancel.gate is not None and cancel.gate.result(_WAIT_S) is None  # opened, not failed: it is sent
