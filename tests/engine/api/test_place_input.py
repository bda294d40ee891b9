"""`Engine.place_order`'s argument checks (`engine.api._requests`), over a facade whose pair actor is a fake that
records what it is told: enum-valued arguments in any letter case, refusals that list the valid values, and an
empty idempotency key refused rather than taken as "no key"."""

from __future__ import annotations

from typing import Any

import pytest

from actors.root import EngineState
from engine.api import Refusal, RefusalReason
from engine.api._requests import EngineRequests
from engine.clock import ManualClock
from engine.domain import FallbackKind, OrderRequest, OrderType, Pair, Side, TimeInForce

PAIR = Pair("BTC/USDT")


class _Facade(EngineRequests):
    """`EngineRequests` whose pair actor takes every request (kept in `told`)."""

    def __init__(self) -> None:
        self._stopped = self._closed = False
        self._whitelist = (PAIR,)
        self._state = EngineState()
        self.clock = ManualClock(1_700_000_000_000)
        self.told: list[OrderRequest] = []
        self._actor_answer = lambda placement: placement  # type: ignore[method-assign] - no replays here

        def tell(pair: Pair, method: str, *args: Any) -> bool:
            assert (pair, method) == (PAIR, "place")
            self.told.append(args[0])
            return True

        self._tell_pair = tell  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"side": "BUY", "order_type": "LIMIT"}, {"side": Side.BUY, "order_type": OrderType.LIMIT}),
        ({"time_in_force": "ioc"}, {"time_in_force": TimeInForce.IOC}),
        ({"time_in_force": "Fok"}, {"time_in_force": TimeInForce.FOK}),
        ({"fallback": "MARKET"}, {"fallback": FallbackKind.MARKET}),
        ({"fallback": "Ioc_Limit"}, {"fallback": FallbackKind.IOC_LIMIT}),
        ({"time_in_force": TimeInForce.GTC, "fallback": FallbackKind.NONE},
         {"time_in_force": TimeInForce.GTC, "fallback": FallbackKind.NONE}),
    ],
)  # fmt: skip
def test_enum_arguments_are_taken_in_any_letter_case(arguments: dict[str, Any], expected: dict[str, Any]) -> None:
    facade = _Facade()
    placement = facade.place_order(**{"pair": PAIR, "side": "buy", "amount": "0.01", "price": "59000", **arguments})
    assert not placement.done(), placement.result()  # told to the pair's actor, not refused
    [request] = facade.told
    assert {name: getattr(request, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("arguments", "field", "valid"),
    [
        ({"time_in_force": "iok"}, "time_in_force", "GTC, IOC, FOK"),
        ({"fallback": "limit"}, "fallback", "market, ioc_limit, none"),
        ({"side": "long"}, "side", "buy, sell"),
        ({"order_type": "stop"}, "order_type", "limit, market, limit_maker"),
    ],
)
def test_an_unknown_value_is_refused_with_the_valid_ones_listed(
    arguments: dict[str, Any], field: str, valid: str
) -> None:
    facade = _Facade()
    outcome = facade.place_order(**{"pair": PAIR, "side": "buy", "amount": "0.01", **arguments}).result(timeout=1)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.INVALID_REQUEST, outcome
    assert outcome.message.startswith(f"{field}: "), outcome.message
    assert valid in outcome.message, outcome.message
    assert facade.told == []


def test_an_empty_idempotency_key_is_refused_not_taken_as_no_key() -> None:
    # Taken as "no key", a strategy re-sending after a crash with its (empty) key would execute twice.
    facade = _Facade()
    outcome = facade.place_order(PAIR, "buy", "0.01", "59000", idempotency_key="").result(timeout=1)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.INVALID_REQUEST, outcome
    assert outcome.message.startswith("idempotency_key: must not be empty"), outcome.message
    assert facade.told == []
    facade.place_order(PAIR, "buy", "0.01", "59000")  # None: no key, the request's own id stands in
    [request] = facade.told
    assert request.idempotency_key == request.request_id


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"limit_timeout": "-1"}, "limit_timeout: must be > 0, got -1"),
        ({"priority": 99}, "priority: 99 is not a request priority; one of FALLBACK (1), EXIT (2), ENTRY (3)"),
        ({"context": {"foo": 1}}, "context.foo: not a context field (the fields: strategy, timeframe, rsi, ewo, ema, "
                                  "sma, extra; other indicator values go in `extra`)"),
    ],
)  # fmt: skip
def test_refusals_name_the_argument_as_the_caller_wrote_it(arguments: dict[str, Any], message: str) -> None:
    # Found by a strategy author: "limit_timeout_s: Value error, must be > 0", "99 is not a valid Priority" and
    # "foo: Extra inputs are not permitted" named the model's fields and hid the valid values.
    outcome = _Facade().place_order(PAIR, "buy", "0.01", "59000", **arguments).result(0)
    assert isinstance(outcome, Refusal) and outcome.reason is RefusalReason.INVALID_REQUEST
    assert outcome.message == message
