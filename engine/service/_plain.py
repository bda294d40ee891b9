"""Decimals as people read them in the control API's JSON views (`_schemas`) and the CLI's tables.

`plain_decimal` itself lives in `engine.domain` (the engine's own messages use it too); it is re-exported here
for this module's importers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from engine.domain import Trade, plain_decimal

__all__ = ["jsonable", "plain_decimal", "plain_text"]


def plain_text(value: object) -> object:
    """A decimal string (as the exchange sends balances) made plain; anything else, or a non-number, as it is."""
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, str):
        try:
            return plain_decimal(Decimal(value))
        except ArithmeticError:
            return value
    return value


def jsonable(model: BaseModel) -> dict[str, Any]:
    """`model.model_dump(mode="json")`, with every Decimal as `plain_decimal` text. A `Trade` also carries `received`
    (what a buy added to the account after a fee taken in the base asset: what to sell to close the position)."""
    data = model.model_dump()
    if isinstance(model, Trade):  # a property, not a field: the model validates its own dumps (extra="forbid")
        data["received"] = model.received
    out = to_jsonable_python(_plain(data))
    assert isinstance(out, dict)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
