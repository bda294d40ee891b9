"""Decimals in the control API's answers (and so the CLI's) read as numbers people write: "0.01" not "0.01000",
"0" not "0E-8", "64.85184" not "64.8518400000000000" — exactly the same value, never rounded, never an exponent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from engine.domain import ClientOrderId, Order, OrderStatus, OrderType, Pair, RequestId, Side
from engine.service._app import ApiState, EventHub, build_app
from engine.service._plain import plain_decimal
from engine.service._schemas import order_json

TOKEN = "t0ken-for-the-plain-decimals-test"
_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _order() -> Order:
    return Order(
        client_order_id=ClientOrderId("bx-1"), request_id=RequestId("r-1"), pair=Pair("BTC/USDT"), side=Side.BUY,
        order_type=OrderType.MARKET, status=OrderStatus.FILLED, price=None, amount=Decimal("0.001000"),
        filled=Decimal("0.00100000"), remaining=Decimal("0E-8"), quote_filled=Decimal("64.8518400000000000"),
        average_price=Decimal("64851.84000000"), fees={"BTC": Decimal("0.00000100")}, created_at=_NOW,
        updated_at=_NOW,
    )  # fmt: skip


def test_an_orders_decimals_are_plain_and_everything_else_is_as_before() -> None:
    order = _order()
    shown = order_json(order)
    assert {k: shown[k] for k in ("amount", "filled", "remaining", "quote_filled", "average_price")} == {
        "amount": "0.001", "filled": "0.001", "remaining": "0", "quote_filled": "64.85184", "average_price": "64851.84"
    }  # fmt: skip
    assert shown["fees"] == {"BTC": "0.000001"}
    before = order.model_dump(mode="json")
    assert {k: v for k, v in shown.items() if not isinstance(v, str | dict) or k.endswith("_at")} == {
        k: v for k, v in before.items() if not isinstance(v, str | dict) or k.endswith("_at")
    }
    assert {k for k, v in shown.items() if v != before[k]} == {
        "amount", "filled", "remaining", "quote_filled", "average_price", "fees"
    }  # fmt: skip


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_plain_text_is_the_exact_value_without_an_exponent(value: Decimal) -> None:
    text = plain_decimal(value)
    assert Decimal(text) == value and "E" not in text.upper()
    assert "." not in text or not text.endswith("0")


class _Engine:
    config = SimpleNamespace(risk=SimpleNamespace(kill_switch=False))

    def balances(self) -> dict[str, Any]:
        return {
            "balances": {"BTC": {"free": "1.00099900", "locked": "0E-8"}, "USDT": {"free": "35.02", "locked": "5"}},
            "as_of_ms": 1,
            "wallet_btc": "2.3",
        }


async def _balances() -> Any:
    app = build_app(ApiState(_Engine(), TOKEN, EventHub()))  # type: ignore[arg-type]
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        response = await client.get("/balances", headers={"Authorization": f"Bearer {TOKEN}"})
        return await response.json()


def test_balances_are_plain() -> None:
    body = asyncio.run(_balances())
    assert body["balances"] == {"BTC": {"free": "1.000999", "locked": "0"}, "USDT": {"free": "35.02", "locked": "5"}}
    assert body["as_of_ms"] == 1 and body["wallet_btc"] == "2.3"
