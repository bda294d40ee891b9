"""What `Engine.cancel_order` says when the root (which runs a cancel for a pair whose actor is not running) gives no
answer: "nothing was sent" only where it is true — the root dead before it was asked, or stopped before it took the
message, the cancel thread closed — and "may or may not have been sent; look the request up" once it was asked and
did not answer in time (it may still carry the cancel out). The facade over fakes of the root; every wait bounded.
"""

from __future__ import annotations

from typing import Any

import pykka
import pytest

from engine.api import CancelOutcome, CancelStatus
from engine.api._cancels import CancelThread, EngineCancels
from engine.domain import Pair

PAIR = Pair("BTC/USDT")
_MAYBE = "the cancel may or may not have been sent; look the request up (get_order / the events)"


class _Asked:
    """The root's answer to `cancel_tracked`: its failure, raised at once (no real 15 s wait)."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def get(self, timeout: float) -> object:  # float-ok: seconds
        assert timeout > 0  # every wait is bounded
        raise self._error


class _Root:
    def __init__(self, asked: _Asked | None) -> None:
        self._asked = asked  # None: the root is dead, and asking it raises

    def proxy(self) -> Any:
        if self._asked is None:
            raise pykka.ActorDeadError("the root is dead")
        asked = self._asked
        return type("_Proxy", (), {"cancel_tracked": staticmethod(lambda *_args: asked)})()


class _Facade(EngineCancels):
    """`EngineCancels` for a pair no actor runs (`_tell_pair` says False): the root is asked."""

    def __init__(self, asked: _Asked | None, *, stopped: bool = False) -> None:
        self._closed, self._stopped = False, stopped
        self._whitelist = (PAIR,)
        self._cancel_thread = CancelThread()
        self._root = _Root(asked)
        self._store = lambda: None
        self._tell_pair = lambda *_args: False


def _cancel(facade: _Facade) -> CancelOutcome:
    try:
        return facade.cancel_order(PAIR, "r1").result(timeout=10)
    finally:
        facade._cancel_thread.close()


def test_a_root_asked_that_times_out_may_have_sent_the_cancel() -> None:
    outcome = _cancel(_Facade(_Asked(pykka.Timeout("15 seconds"))))
    assert outcome.status is CancelStatus.UNAVAILABLE and outcome.details == {"retry": "1", "cause": "timeout"}
    assert outcome.message.endswith(f"{_MAYBE} before retrying"), outcome.message
    assert "nothing was sent" not in outcome.message


def test_a_root_asked_that_fails_on_the_cancel_may_have_sent_it() -> None:
    outcome = _cancel(_Facade(_Asked(RuntimeError("a bug in the root"))))
    assert outcome.status is CancelStatus.UNAVAILABLE and outcome.details["cause"] == "engine"
    assert _MAYBE in outcome.message and "nothing was sent" not in outcome.message


def test_a_root_asked_that_times_out_while_the_engine_stops_may_have_sent_the_cancel() -> None:
    outcome = _cancel(_Facade(_Asked(pykka.Timeout("15 seconds")), stopped=True))
    assert outcome.status is CancelStatus.SHUTTING_DOWN
    assert outcome.message == f"the engine stopped before the root answered; {_MAYBE}", outcome.message


@pytest.mark.parametrize("stopped", [False, True])
def test_a_root_that_stopped_before_taking_the_message_sent_nothing(stopped: bool) -> None:
    # pykka answers the asks left in a stopped actor's inbox with ActorDeadError: the root never ran it.
    outcome = _cancel(_Facade(_Asked(pykka.ActorDeadError("stopped before handling the message")), stopped=stopped))
    assert _MAYBE not in outcome.message
    if stopped:
        assert outcome.status is CancelStatus.SHUTTING_DOWN and "nothing more is sent" in outcome.message
    else:
        assert outcome.status is CancelStatus.UNAVAILABLE and outcome.message.endswith("nothing was sent; retry")


def test_a_root_dead_before_it_was_asked_sent_nothing() -> None:
    outcome = _cancel(_Facade(None))
    assert outcome.status is CancelStatus.UNAVAILABLE and outcome.details == {"retry": "1", "cause": "engine"}
    assert outcome.message.endswith("nothing was sent; retry") and _MAYBE not in outcome.message


def test_a_closed_cancel_thread_answers_at_once_that_nothing_more_is_sent() -> None:
    # The thread closes only once the engine has stopped: the root's queued ask was dropped with it, or answered
    # the caller first (the first answer stands).
    facade = _Facade(_Asked(pykka.Timeout("never waited for")), stopped=True)
    facade._cancel_thread.close()
    outcome = facade.cancel_order(PAIR, "r1").result(timeout=0)
    assert outcome.status is CancelStatus.SHUTTING_DOWN and outcome.message.endswith("nothing more is sent")
