"""The facade's side of `Engine.cancel_order` (`engine.api._cancels`), over fakes of the actors: how the answer is
found once the pair's book does not hold the request (the database, asked on the cancel thread), and what the caller
hears when that cannot be asked — never a future left without an answer. The whole path runs against the simulator
in tests/engine_e2e/test_cancel_outcomes.py."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pykka

from engine.api import CancelOutcome, CancelStatus, Engine
from engine.api._cancels import CancelThread, EngineCancels
from engine.domain import Pair, TradeStatus

PAIR = Pair("BTC/USDT")


class _Answer:
    def __init__(self, value: object = None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error

    def get(self, timeout: float) -> object:  # float-ok: seconds
        assert timeout > 0  # every wait is bounded
        if self._error is not None:
            raise self._error
        return self._value


class _Facade(EngineCancels):
    """`EngineCancels` over a pair actor that holds nothing (it answers None) and a fake database."""

    def __init__(self, get_trade: Callable[[str], _Answer]) -> None:
        self._closed = self._stopped = False
        self._whitelist = (PAIR,)
        self._cancel_thread = CancelThread()
        self._root = None
        self._store = lambda: SimpleNamespace(get_trade=get_trade)
        self.replies: list[Any] = []

        def tell(pair: Pair, method: str, *args: Any) -> bool:
            assert (pair, method) == (PAIR, "cancel")
            self.replies.append(args[1])
            return True

        self._tell_pair = tell


def _not_in_the_book(facade: _Facade) -> CancelOutcome:
    cancellation = facade.cancel_order(PAIR, "r1")
    [reply] = facade.replies
    reply(None)  # what the pair actor says of a request its book does not hold
    try:
        return cancellation.result(timeout=10)
    finally:
        facade._cancel_thread.close()


def test_the_engine_mixes_in_the_cancels() -> None:
    assert Engine.cancel_order is EngineCancels.cancel_order


def test_a_stored_trade_of_the_pair_is_already_done_with_its_status() -> None:
    trade = SimpleNamespace(pair=PAIR, status=TradeStatus.PARTIAL)
    outcome = _not_in_the_book(_Facade(lambda _rid: _Answer(trade)))
    assert outcome.status is CancelStatus.ALREADY_DONE and outcome.final_status is TradeStatus.PARTIAL


def test_a_database_that_does_not_answer_is_unavailable_database_retry() -> None:
    outcome = _not_in_the_book(_Facade(lambda _rid: _Answer(error=ConnectionError("database down"))))
    assert outcome.status is CancelStatus.UNAVAILABLE and outcome.details == {"retry": "1", "cause": "database"}
    assert "database down" in outcome.message


def test_a_database_ask_that_times_out_is_unavailable_timeout() -> None:
    outcome = _not_in_the_book(_Facade(lambda _rid: _Answer(error=pykka.Timeout("15 seconds"))))
    assert outcome.status is CancelStatus.UNAVAILABLE and outcome.details["cause"] == "timeout"


def test_an_answer_due_after_the_stop_is_shutting_down() -> None:
    facade = _Facade(lambda _rid: _Answer(None))
    cancellation = facade.cancel_order(PAIR, "r1")
    facade._stopped = True
    facade._cancel_thread.close()
    facade.replies[0](None)  # the thread takes no more work: answered at once
    outcome = cancellation.result(timeout=10)
    assert outcome.status is CancelStatus.SHUTTING_DOWN


def test_the_first_answer_stands() -> None:
    facade = _Facade(lambda _rid: _Answer(None))
    cancellation = facade.cancel_order(PAIR, "r1")
    first = CancelOutcome(CancelStatus.CANCEL_SENT, PAIR, cancellation.request_id, "sent")
    facade.replies[0](first)
    facade.replies[0](CancelOutcome(CancelStatus.UNAVAILABLE, PAIR, cancellation.request_id, "late"))  # no error
    assert cancellation.result(timeout=1) is first
    assert cancellation.cancel() is False  # like a Placement: it cannot stop what was sent
