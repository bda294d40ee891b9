"""The `visibility_lag` fault lags REST behind the matching engine, as Binance's does (field-lessons: "-2011 can come
back for a real order not yet visible to REST"): a lagged order rests, is crossed by takers and price moves, fills
and sends its user-stream events like any order, while REST does not show it — GET order answers -2013, a cancel by
id -2011 (the order stays on the book), and openOrders, allOrders, cancel-all and myTrades leave it out — until the
lag is over, when REST shows what it became meanwhile."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sim import SimConfig, Simulator
from sim._config import AccountSpec
from tests.sim._helpers import NOW, exchange, order
from tests.sim.test_auth import _signed
from tests.sim.test_ratelimit import ManualClock

OTHER = AccountSpec(name="other", api_key="k" * 64, secret="s" * 64)
LAG_MS = 3_000


def _lagged_buy(ex: Any, price: str, account: str = "main", qty: str = "0.01") -> Any:
    """A resting buy hidden from REST for `LAG_MS` (what the REST handler does under the fault)."""
    res = order(ex, account, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity=qty, price=price)
    assert res.order.status == "NEW"
    res.order.visible_from = NOW + LAG_MS
    return res.order


def _reports(ex: Any, account: str) -> list[dict[str, Any]]:
    return [e for kind, who, e in ex.outbox if kind == "user" and who == account and e.get("e") == "executionReport"]


def test_a_lagged_order_fills_on_a_price_move_and_streams_its_fill() -> None:
    ex = exchange(cross_fills="full")
    below = ex.markets["BTCUSDT"].mid - 100
    buy = _lagged_buy(ex, str(below))
    ex.set_price("BTCUSDT", below - 1000, NOW + 1)  # the market trades through the buy, inside the lag
    assert (buy.status, buy.executed_qty) == ("FILLED", Decimal("0.01"))
    assert [r["x"] for r in _reports(ex, "main")] == ["NEW", "TRADE"]  # the stream is not lagged


def test_a_taker_trades_with_another_accounts_lagged_order() -> None:
    ex = exchange(accounts=[AccountSpec(), OTHER])
    price = ex.markets["BTCUSDT"].best_bid + Decimal("0.01")  # the best bid: a sell at market meets it first
    maker = _lagged_buy(ex, str(price), account="other", qty="0.004")
    taker = order(ex, symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.004")
    assert taker.order.status == "FILLED" and [t.price for t in taker.fills] == [price]
    assert (maker.status, maker.executed_qty) == ("FILLED", Decimal("0.004"))
    assert [r["x"] for r in _reports(ex, "other")] == ["NEW", "TRADE"]


def test_a_lagged_order_meets_its_own_accounts_taker_under_self_trade_prevention() -> None:
    ex = exchange()
    price = ex.markets["BTCUSDT"].best_bid + Decimal("0.01")
    maker = _lagged_buy(ex, str(price))
    order(ex, symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.004")
    assert maker.status == "EXPIRED_IN_MATCH"  # EXPIRE_MAKER: the book had it, so STP met it


def _call(sim: Simulator, clock: ManualClock, method: str, path: str, **params: str) -> Any:
    acc = sim.accounts[0]
    return _signed(sim, method, path, params, acc.api_key, acc.secret, ts=clock.now).json()


def test_rest_does_not_show_a_lagged_order_that_fills_until_the_lag_is_over() -> None:
    clock = ManualClock(NOW)
    with Simulator(SimConfig(cross_fills="full"), clock=clock) as sim:
        sim.control.add_fault({"kind": "visibility_lag", "target": "POST /api/v3/order", "count": 1,
                               "lag_ms": LAG_MS})  # fmt: skip
        below = sim.control.price("BTCUSDT") - 100
        placed = _call(sim, clock, "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                       timeInForce="GTC", quantity="0.01", price=str(below), newClientOrderId="lag")  # fmt: skip
        assert placed["status"] == "NEW"  # the create's own answer is not lagged
        oid = str(placed["orderId"])
        sim.control.set_price("BTCUSDT", str(below - 1000))
        [mine] = sim.control.ledger()["orders"]
        assert (mine["status"], mine["executedQty"]) == ("FILLED", "0.01000000")  # the matching engine filled it
        clock.now += LAG_MS - 1
        by_id = {"symbol": "BTCUSDT", "orderId": oid}
        assert _call(sim, clock, "GET", "/api/v3/order", **by_id) == {"code": -2013, "msg": "Order does not exist."}
        assert _call(sim, clock, "DELETE", "/api/v3/order", **by_id) == {"code": -2011, "msg": "Unknown order sent."}
        assert _call(sim, clock, "GET", "/api/v3/allOrders", symbol="BTCUSDT") == []
        assert _call(sim, clock, "GET", "/api/v3/myTrades", symbol="BTCUSDT") == []
        assert _call(sim, clock, "GET", "/api/v3/myTrades", symbol="BTCUSDT", orderId=oid) == []
        clock.now += 1
        assert _call(sim, clock, "GET", "/api/v3/order", **by_id)["status"] == "FILLED"
        [trade] = _call(sim, clock, "GET", "/api/v3/myTrades", symbol="BTCUSDT", orderId=oid)
        assert (trade["qty"], Decimal(trade["price"])) == ("0.01000000", below)


def test_a_cancel_of_a_lagged_open_order_answers_unknown_and_leaves_it_on_the_book() -> None:
    clock = ManualClock(NOW)
    with Simulator(SimConfig(), clock=clock) as sim:
        sim.control.add_fault({"kind": "visibility_lag", "target": "POST /api/v3/order", "count": 1,
                               "lag_ms": LAG_MS})  # fmt: skip
        below = sim.control.price("BTCUSDT") - 100
        _call(sim, clock, "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
              quantity="0.01", price=str(below), newClientOrderId="lag")  # fmt: skip
        by_cid = {"symbol": "BTCUSDT", "origClientOrderId": "lag"}
        assert _call(sim, clock, "DELETE", "/api/v3/order", **by_cid) == {"code": -2011, "msg": "Unknown order sent."}
        unknown = {"code": -2011, "msg": "Unknown order sent."}
        assert _call(sim, clock, "DELETE", "/api/v3/openOrders", symbol="BTCUSDT") == unknown
        assert _call(sim, clock, "GET", "/api/v3/openOrders", symbol="BTCUSDT") == []
        assert [o["status"] for o in sim.control.ledger()["orders"]] == ["NEW"]  # still working
        clock.now += LAG_MS
        assert [o["clientOrderId"] for o in _call(sim, clock, "GET", "/api/v3/openOrders", symbol="BTCUSDT")] == ["lag"]
        assert _call(sim, clock, "DELETE", "/api/v3/order", **by_cid)["status"] == "CANCELED"
