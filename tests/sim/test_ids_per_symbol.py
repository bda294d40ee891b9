"""Binance numbers orders and trades per symbol: two symbols have an order with the same orderId and a trade with the
same tradeId. Every symbol of the simulator starts at the same ids, so they collide from the first order on, and a
lookup, a cancel, myTrades or the control API by id finds the order of the symbol asked about."""

from __future__ import annotations

from typing import Any

from sim import SimConfig, Simulator
from sim._config import AccountSpec
from tests.sim._helpers import NOW, exchange, order, running
from tests.sim.test_auth import _signed

OTHER = AccountSpec(name="other", api_key="k" * 64, secret="s" * 64)


def _market_buy(ex: Any, symbol: str) -> Any:
    return order(ex, symbol=symbol, side="BUY", type="MARKET", quantity="0.01")


def test_each_symbol_numbers_its_orders_and_trades_from_the_same_start() -> None:
    ex = exchange()
    btc, eth = _market_buy(ex, "BTCUSDT"), _market_buy(ex, "ETHUSDT")
    assert btc.order.order_id == eth.order.order_id == 1001
    assert btc.fills[0].trade_id == eth.fills[0].trade_id
    assert ex.order("BTCUSDT", 1001) is btc.order and ex.order("ETHUSDT", 1001) is eth.order
    assert _market_buy(ex, "BTCUSDT").order.order_id == 1002  # ETH's orders do not move BTC's numbers


def test_numbering_from_the_clock_starts_every_symbol_there() -> None:
    ex = exchange(ids_from_clock=True)
    ex.start_ids_at(NOW)
    btc, eth = _market_buy(ex, "BTCUSDT"), _market_buy(ex, "ETHUSDT")
    assert btc.order.order_id == eth.order.order_id == NOW + 1
    assert btc.fills[0].trade_id == eth.fills[0].trade_id > NOW


def test_the_unfilled_order_count_forgets_each_filled_order_whatever_its_symbol() -> None:
    # The rate limiter keyed orders by orderId: the second of two colliding ids took the first's place, and the
    # first one's fill no longer took it off the unfilled-order count.
    with running(cross_fills="full") as sim:
        acc = sim.accounts[0]
        core = sim.core
        for symbol in ("ETHUSDT", "BTCUSDT"):
            below = str(sim.control.price(symbol) - 10)
            limit = {"symbol": symbol, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
                     "price": below}  # fmt: skip
            assert _signed(sim, "POST", "/api/v3/order", limit, acc.api_key, acc.secret).json()["orderId"] == 1001
        assert core.limiter.order_counts(acc.name, core.now())[0] == 2
        for symbol in ("BTCUSDT", "ETHUSDT"):
            sim.control.fill_order(symbol, order_id=1001)
        assert core.limiter.order_counts(acc.name, core.now())[0] == 0


def _call(sim: Simulator, method: str, path: str, account: int = 0, **params: str) -> Any:
    acc = sim.accounts[account]
    return _signed(sim, method, path, params, acc.api_key, acc.secret).json()


def test_rest_finds_the_order_and_trades_of_the_symbol_asked_about() -> None:
    with Simulator(SimConfig(accounts=[AccountSpec(), OTHER])) as sim:
        for symbol in ("BTCUSDT", "ETHUSDT"):
            placed = _call(sim, "POST", "/api/v3/order", symbol=symbol, side="BUY", type="MARKET", quantity="0.01")
            assert placed["orderId"] == 1001
        assert _call(sim, "GET", "/api/v3/order", symbol="ETHUSDT", orderId="1001")["symbol"] == "ETHUSDT"
        for symbol in ("BTCUSDT", "ETHUSDT"):
            [trade] = _call(sim, "GET", "/api/v3/myTrades", symbol=symbol, orderId="1001")
            assert (trade["symbol"], trade["orderId"]) == (symbol, 1001)
        # Another account's order of the same id and symbol is not this account's: unknown, not a client id mismatch.
        got = _call(sim, "GET", "/api/v3/order", account=1, symbol="ETHUSDT", orderId="1001", origClientOrderId="x")
        assert got == {"code": -2013, "msg": "Order does not exist."}
        below = str(sim.control.price("ETHUSDT") - 10)
        resting = _call(sim, "POST", "/api/v3/order", symbol="ETHUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                        quantity="0.01", price=below)  # fmt: skip
        assert resting["orderId"] == 1002
        assert _call(sim, "DELETE", "/api/v3/order", symbol="BTCUSDT", orderId="1002") == {
            "code": -2011,
            "msg": "Unknown order sent.",
        }  # BTC has no order 1002: ETH's stays
        assert _call(sim, "DELETE", "/api/v3/order", symbol="ETHUSDT", orderId="1002")["status"] == "CANCELED"
