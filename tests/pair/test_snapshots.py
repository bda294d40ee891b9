"""The book's order and trade snapshots: built unvalidated from its own state, identical to validated ones."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from pydantic import ValidationError

from engine.domain import Order, OrderStatus, Side, Trade
from engine.pair._legs import Leg, order_of
from tests.pair._book_helpers import Harness, order_json, request


def _filled_leg() -> tuple[Harness, Leg]:
    h = Harness()
    req = request(price="60010", side=Side.BUY)
    h.place(req)
    h.answer(order_json(h.sent[-1], "FILLED", "0.01", [("60006", "0.01")]))
    execution = h.book.execution(req.request_id)
    assert execution is not None
    leg = h.book.leg(execution.legs[0])
    assert leg is not None
    return h, leg


def test_snapshots_equal_validated_models() -> None:
    h, leg = _filled_leg()
    stored = [s for s in h.stored if isinstance(s, Order | Trade)]
    assert stored
    for item in stored:
        # Validation of the same fields accepts them and builds an equal model.
        assert type(item).model_validate(item.model_dump()) == item
    order = order_of(leg)
    assert order.status is OrderStatus.FILLED and order.remaining == 0
    assert order_of(leg) is order  # unchanged leg: the same snapshot, not a new one


def test_doubtful_fill_values_are_still_validated() -> None:
    _, leg = _filled_leg()
    # A negative commission from the wire: validation refuses the snapshot exactly as it always did.
    leg.state = replace(leg.state, fees=(("BNB", Decimal(-1)),))
    with pytest.raises(ValidationError):
        order_of(leg)


def test_trusted_needs_every_field() -> None:
    _, leg = _filled_leg()
    fields = order_of(leg).model_dump()
    assert Order.trusted(**fields) == Order(**fields)
    del fields["remaining"]
    with pytest.raises(TypeError):
        Order.trusted(**fields)
