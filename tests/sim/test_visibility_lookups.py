"""`visibility_lag` counted in lookups (`lag_lookups`): REST hides a new order from the first N requests that name it
(GET order, a cancel by id, myTrades of its orderId), and shows it nowhere before they are spent, while it rests,
trades and streams its events. The lag then holds however far a client's manual clock runs between lookups (the
whole-stack state machine moves the engine's clock minutes at a time; a lag in the simulator's milliseconds would be
over before the engine's first look, or hide an order for what the engine counts as hours)."""

from __future__ import annotations

from decimal import Decimal

from sim import SimConfig, Simulator
from tests.sim._helpers import NOW
from tests.sim.test_ratelimit import ManualClock
from tests.sim.test_visibility_lag import _call

NOT_FOUND = {"code": -2013, "msg": "Order does not exist."}
UNKNOWN = {"code": -2011, "msg": "Unknown order sent."}


def _hidden_buy(sim: Simulator, clock: ManualClock, lookups: int, below: Decimal) -> str:
    sim.control.add_fault({"kind": "visibility_lag", "target": "POST /api/v3/order", "count": 1,
                           "lag_lookups": lookups})  # fmt: skip
    placed = _call(sim, clock, "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                   timeInForce="GTC", quantity="0.01", price=str(below), newClientOrderId="lag")  # fmt: skip
    assert placed["status"] == "NEW"  # the create's own answer is not lagged
    return str(placed["orderId"])


def test_each_request_naming_the_order_spends_one_hidden_lookup_and_lists_spend_none() -> None:
    clock = ManualClock(NOW)
    with Simulator(SimConfig(cross_fills="full"), clock=clock) as sim:
        below = sim.control.price("BTCUSDT") - 100
        oid = _hidden_buy(sim, clock, 3, below)
        sim.control.set_price("BTCUSDT", str(below - 1000))  # it fills while hidden
        clock.now += 3_600_000  # an hour: time does not end a lag in lookups
        for _ in range(5):  # lists do not name it: hidden, nothing spent
            assert _call(sim, clock, "GET", "/api/v3/openOrders", symbol="BTCUSDT") == []
            assert _call(sim, clock, "GET", "/api/v3/allOrders", symbol="BTCUSDT") == []
            assert _call(sim, clock, "GET", "/api/v3/myTrades", symbol="BTCUSDT") == []
        by_cid = {"symbol": "BTCUSDT", "origClientOrderId": "lag"}
        assert _call(sim, clock, "GET", "/api/v3/order", **by_cid) == NOT_FOUND  # 1
        assert _call(sim, clock, "GET", "/api/v3/myTrades", symbol="BTCUSDT", orderId=oid) == []  # 2
        assert _call(sim, clock, "GET", "/api/v3/order", symbol="BTCUSDT", orderId=oid) == NOT_FOUND  # 3
        shown = _call(sim, clock, "GET", "/api/v3/order", **by_cid)
        assert (shown["status"], shown["executedQty"]) == ("FILLED", "0.01000000")
        [trade] = _call(sim, clock, "GET", "/api/v3/myTrades", symbol="BTCUSDT", orderId=oid)
        assert Decimal(trade["price"]) == below
        assert [o["clientOrderId"] for o in _call(sim, clock, "GET", "/api/v3/allOrders", symbol="BTCUSDT")] == ["lag"]


def test_a_cancel_by_id_spends_one_and_leaves_the_order_working_until_it_is_shown() -> None:
    clock = ManualClock(NOW)
    with Simulator(SimConfig(), clock=clock) as sim:
        below = sim.control.price("BTCUSDT") - 100
        _hidden_buy(sim, clock, 1, below)
        by_cid = {"symbol": "BTCUSDT", "origClientOrderId": "lag"}
        assert _call(sim, clock, "DELETE", "/api/v3/openOrders", symbol="BTCUSDT") == UNKNOWN  # a list: none spent
        assert _call(sim, clock, "DELETE", "/api/v3/order", **by_cid) == UNKNOWN  # the one hidden lookup
        assert [o["status"] for o in sim.control.ledger()["orders"]] == ["NEW"]  # still working
        assert [o["clientOrderId"] for o in _call(sim, clock, "GET", "/api/v3/openOrders", symbol="BTCUSDT")] == ["lag"]
        assert _call(sim, clock, "DELETE", "/api/v3/order", **by_cid)["status"] == "CANCELED"


def test_a_request_on_another_symbol_spends_nothing() -> None:
    """Order ids are per symbol: the same id on another symbol names another order (or none)."""
    clock = ManualClock(NOW)
    with Simulator(SimConfig(symbols=["BTCUSDT", "ETHUSDT"]), clock=clock) as sim:
        below = sim.control.price("BTCUSDT") - 100
        oid = _hidden_buy(sim, clock, 1, below)
        assert _call(sim, clock, "GET", "/api/v3/order", symbol="ETHUSDT", orderId=oid) == NOT_FOUND
        assert _call(sim, clock, "GET", "/api/v3/myTrades", symbol="ETHUSDT", orderId=oid) == []
        assert _call(sim, clock, "GET", "/api/v3/openOrders", symbol="BTCUSDT") == []  # still hidden
        assert _call(sim, clock, "GET", "/api/v3/order", symbol="BTCUSDT", orderId=oid) == NOT_FOUND  # spent here
        assert _call(sim, clock, "GET", "/api/v3/order", symbol="BTCUSDT", orderId=oid)["clientOrderId"] == "lag"
