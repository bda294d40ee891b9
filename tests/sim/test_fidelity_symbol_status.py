"""Symbol status: new orders on a symbol that is not TRADING get -2010 "Market is closed.", cancels still work,
the book does not match while the symbol is closed, and the control API sets the status (exchangeInfo follows)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import requests

from sim import SimError
from tests.sim._helpers import NOW, exchange, make_ccxt, order, running
from tests.sim.test_auth import _signed
from tests.sim.test_price_source import VENUE_BTCUSDT

LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001"}


@pytest.mark.parametrize("status", ["BREAK", "HALT", "END_OF_DAY", "CANCEL_ONLY"])
def test_closed_symbol_rejects_new_orders_and_still_cancels(status: str) -> None:
    ex = exchange(symbols=["BTCUSDT", "ETHUSDT"])
    resting = order(ex, **LIMIT, price="60000").order
    ex.set_symbol_status("BTCUSDT", status)
    for params in (
        {**LIMIT, "price": "60000"},
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quoteOrderQty": "100"},
        {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT_MAKER", "quantity": "0.001", "price": "70000"},
    ):
        with pytest.raises(SimError) as err:
            order(ex, **params)
        assert (err.value.status, err.value.code, err.value.msg) == (400, -2010, "Market is closed.")
    with pytest.raises(SimError, match=r"Market is closed\."):
        ex.place_order(ex.accounts["main"], {**LIMIT, "price": "60000"}, NOW, test=True)
    assert order(ex, symbol="ETHUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="3000")
    canceled = ex.cancel_order(ex.accounts["main"], "BTCUSDT", resting.order_id, None, None, NOW)
    assert canceled["status"] == "CANCELED"
    ex.set_symbol_status("BTCUSDT", "TRADING")
    assert order(ex, **LIMIT, price="60000").order.status == "NEW"


def test_closed_symbol_does_not_match_resting_orders() -> None:
    ex = exchange(symbols=["BTCUSDT"], cross_fills="full")
    resting = order(ex, **LIMIT, price="60000").order
    ex.set_symbol_status("BTCUSDT", "HALT")
    ex.set_price("BTCUSDT", Decimal(59000), NOW)
    ex.step(5, NOW)
    assert resting.status == "NEW" and ex.trades == []
    ex.set_symbol_status("BTCUSDT", "TRADING")
    ex.set_price("BTCUSDT", Decimal(59000), NOW)
    assert resting.status == "FILLED"


def test_unknown_status_is_refused() -> None:
    ex = exchange(symbols=["BTCUSDT"])
    with pytest.raises(ValueError, match="status"):
        ex.set_symbol_status("BTCUSDT", "CLOSED")
    with pytest.raises(SimError):
        ex.set_symbol_status("NOPEUSDT", "BREAK")


def test_status_copied_from_the_venue_is_enforced() -> None:
    info = dict(VENUE_BTCUSDT, status="BREAK")
    ex = exchange(symbols=["BTCUSDT"], symbol_info={"BTCUSDT": info}, start_prices={"BTCUSDT": Decimal(60000)})
    with pytest.raises(SimError, match=r"Market is closed\."):
        order(ex, **LIMIT, price="60000")
    served = ex.specs["BTCUSDT"].exchange_info()
    # The simulator has no cancelReplace / amend / OCO / OTO / iceberg / trailing / peg: it does not advertise them.
    for flag in ("cancelReplaceAllowed", "amendAllowed", "ocoAllowed", "otoAllowed", "icebergAllowed"):
        assert served[flag] is False, flag
    assert served["allowTrailingStop"] is False


def _ctl(sim: Any, op: str, **kw: Any) -> requests.Response:
    return requests.post(f"{sim.urls.rest}/_sim/{op}", json=kw, timeout=5)


def test_control_api_halts_a_symbol_on_the_wire() -> None:
    with running(symbols=["BTCUSDT", "ETHUSDT"]) as sim:
        acc = sim.accounts[0]
        r = _ctl(sim, "set_symbol_status", symbol="BTCUSDT", status="BREAK")
        assert r.status_code == 200 and r.json()["result"] == "BREAK"
        assert _ctl(sim, "set_symbol_status", symbol="BTCUSDT", status="NOPE").status_code == 400
        info = requests.get(sim.urls.rest + "/api/v3/exchangeInfo", timeout=5).json()
        assert {s["symbol"]: s["status"] for s in info["symbols"]} == {"BTCUSDT": "BREAK", "ETHUSDT": "TRADING"}
        one = requests.get(sim.urls.rest + "/api/v3/exchangeInfo", params={"symbol": "BTCUSDT"}, timeout=5).json()
        assert one["symbols"][0]["status"] == "BREAK"
        placed = _signed(sim, "POST", "/api/v3/order", {**LIMIT, "price": "60000"}, acc.api_key, acc.secret)
        assert (placed.status_code, placed.json()) == (400, {"code": -2010, "msg": "Market is closed."})
        ccxt_client = make_ccxt(sim)
        markets = ccxt_client.load_markets()
        assert markets["BTC/USDT"]["active"] is False and markets["ETH/USDT"]["active"] is True
        assert sim.control.set_symbol_status("BTCUSDT", "TRADING") == "TRADING"
        info = requests.get(sim.urls.rest + "/api/v3/exchangeInfo", timeout=5).json()
        assert info["symbols"][0]["status"] == "TRADING"
        placed = _signed(sim, "POST", "/api/v3/order", {**LIMIT, "price": "60000"}, acc.api_key, acc.secret)
        assert placed.status_code == 200
