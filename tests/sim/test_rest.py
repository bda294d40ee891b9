"""Every Appendix-A REST endpoint over raw HTTP: shapes, parameters, codes and weights."""

from __future__ import annotations

import time

import requests

from sim import SimConfig
from sim._params import parse_form
from tests.sim._helpers import running
from tests.sim.test_auth import _signed

LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
         "price": "60000"}  # fmt: skip


def test_parse_form_matches_parse_qsl_semantics() -> None:
    out: dict[str, str] = {}
    parse_form("a=1&b=x%20y&c=&d=1+2&e&&f=%2F", out)
    assert out == {"a": "1", "b": "x y", "c": "", "d": "1 2", "e": "", "f": "/"}


def test_public_endpoints() -> None:
    with running(symbols=["BTCUSDT", "ETHBTC"]) as sim:
        base = sim.urls.rest + "/api/v3"
        assert requests.get(base + "/ping", timeout=5).json() == {}
        t = requests.get(base + "/time", timeout=5).json()["serverTime"]
        assert abs(t - time.time() * 1000) < 5000
        info = requests.get(base + "/exchangeInfo", timeout=5).json()
        assert info["timezone"] == "UTC" and [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHBTC"]
        assert [(r["rateLimitType"], r["limit"]) for r in info["rateLimits"][:3]] == [
            ("REQUEST_WEIGHT", 6000), ("ORDERS", 50), ("ORDERS", 160000)]  # fmt: skip
        one = requests.get(base + "/exchangeInfo?symbol=ETHBTC", timeout=5).json()
        assert [s["symbol"] for s in one["symbols"]] == ["ETHBTC"]
        many = requests.get(base + '/exchangeInfo?symbols=["ETHBTC","BTCUSDT"]', timeout=5).json()
        assert len(many["symbols"]) == 2
        bad = requests.get(base + "/exchangeInfo?symbol=NOPE", timeout=5)
        assert (bad.status_code, bad.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
        depth = requests.get(base + "/depth?symbol=BTCUSDT&limit=5", timeout=5)
        body = depth.json()
        assert len(body["bids"]) == 5 and len(body["asks"]) == 5 and body["lastUpdateId"] > 0
        assert float(body["bids"][0][0]) > float(body["bids"][1][0])
        assert float(body["asks"][0][0]) < float(body["asks"][1][0])
        assert depth.headers["X-MBX-USED-WEIGHT-1M"] == str(1 + 1 + 4 * 20 + 5)  # failed requests are charged too
        tk = requests.get(base + "/ticker/24hr?symbol=BTCUSDT", timeout=5).json()
        assert {"bidQty", "closeTime", "count", "weightedAvgPrice"} <= set(tk)
        assert len(requests.get(base + "/ticker/24hr", timeout=5).json()) == 2
        mini = requests.get(base + "/ticker/24hr?symbol=BTCUSDT&type=MINI", timeout=5).json()
        assert "bidQty" not in mini and "lastPrice" in mini
        assert requests.get(base + "/ticker/price?symbol=ETHBTC", timeout=5).json() == {
            "symbol": "ETHBTC", "price": "0.05400000"}  # fmt: skip
        bt = requests.get(base + "/ticker/bookTicker?symbol=BTCUSDT", timeout=5).json()
        assert set(bt) == {"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}
        avg = requests.get(base + "/avgPrice?symbol=BTCUSDT", timeout=5).json()
        assert avg["mins"] == 5 and avg["price"] == "65000.00000000"
        assert requests.get(base + "/avgPrice", timeout=5).json()["code"] == -1102


def test_private_endpoints() -> None:
    with running() as sim:
        acc = sim.accounts[0]

        def call(method: str, path: str, **params: str) -> requests.Response:
            return _signed(sim, method, "/api/v3/" + path, params, acc.api_key, acc.secret)

        ack = call("POST", "order", **LIMIT, newClientOrderId="o1", newOrderRespType="ACK").json()
        assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
        res = call("POST", "order", **LIMIT, newClientOrderId="o2", newOrderRespType="RESULT").json()
        assert "fills" not in res and res["workingTime"] == res["transactTime"] and res["status"] == "NEW"
        ioc = call("POST", "order", **{**LIMIT, "timeInForce": "IOC"}).json()
        assert ioc["status"] == "EXPIRED" and ioc["expiryReason"] == "UNFILLED_IOC_QUANTITY_EXPIRED"
        assert ioc["fills"] == [] and ioc["clientOrderId"].startswith("web_")
        assert call("POST", "order/test", **LIMIT).json() == {}
        rates = call("POST", "order/test", **LIMIT, computeCommissionRates="true").json()
        assert rates["standardCommissionForOrder"] == {"maker": "0.00100000", "taker": "0.00100000"}
        assert call("POST", "order", **{**LIMIT, "type": "STOP_LOSS"}).json()["code"] == -1014
        q = call("GET", "order", symbol="BTCUSDT", origClientOrderId="o1").json()
        assert q["isWorking"] is True and q["stopPrice"] == "0.00000000" and q["updateTime"] == q["time"]
        assert len(call("GET", "openOrders").json()) == 2
        assert len(call("GET", "openOrders", symbol="BTCUSDT").json()) == 2
        restricted = call("DELETE", "order", symbol="BTCUSDT", origClientOrderId="o1",
                          cancelRestrictions="ONLY_PARTIALLY_FILLED")  # fmt: skip
        assert restricted.json() == {"code": -2011, "msg": "Order was not canceled due to cancel restrictions."}
        assert call("DELETE", "order", symbol="BTCUSDT", orderId="1", cancelRestrictions="X").json()["code"] == -1145
        canceled = call("DELETE", "order", symbol="BTCUSDT", origClientOrderId="o1", newClientOrderId="c1").json()
        assert (canceled["clientOrderId"], canceled["origClientOrderId"]) == ("c1", "o1")
        assert call("DELETE", "order", symbol="BTCUSDT", origClientOrderId="o1").json()["code"] == -2011
        all_canceled = call("DELETE", "openOrders", symbol="BTCUSDT").json()
        assert [o["origClientOrderId"] for o in all_canceled] == ["o2"]
        assert call("DELETE", "openOrders", symbol="BTCUSDT").json()["code"] == -2011
        market = call("POST", "order", symbol="BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="100").json()
        assert market["status"] == "FILLED" and market["fills"]
        orders = call("GET", "allOrders", symbol="BTCUSDT").json()
        assert [o["status"] for o in orders] == ["CANCELED", "CANCELED", "EXPIRED", "FILLED"]
        assert len(call("GET", "allOrders", symbol="BTCUSDT", limit="2").json()) == 2
        trades = call("GET", "myTrades", symbol="BTCUSDT").json()
        assert trades and all(t["orderId"] == market["orderId"] for t in trades)
        assert call("GET", "myTrades", symbol="BTCUSDT", orderId="1").json() == []
        assert call("GET", "myTrades", symbol="BTCUSDT", fromId=str(trades[-1]["id"])).json() == trades[-1:]
        span = call("GET", "myTrades", symbol="BTCUSDT", startTime="0", endTime=str(86_400_001))
        assert span.json()["code"] == -1127
        # Only the documented combinations: orderId goes with fromId alone.
        assert call("GET", "myTrades", symbol="BTCUSDT", orderId="1", startTime="0").json()["code"] == -1128
        assert call("GET", "myTrades", symbol="BTCUSDT", orderId="1", fromId="1").json() == []
        # ACK is the default response for order types other than MARKET and LIMIT.
        maker = call("POST", "order", **{**LIMIT, "type": "LIMIT_MAKER", "timeInForce": "", "price": "55000"}).json()
        assert "status" not in maker and maker.get("orderListId") == -1, maker
        account = call("GET", "account", omitZeroBalances="true").json()
        assert account["makerCommission"] == 10 and account["commissionRates"]["taker"] == "0.00100000"
        assert {b["asset"] for b in account["balances"]} == {"BTC", "ETH", "BNB", "USDT"}
        assert account["canTrade"] is True and account["permissions"] == ["SPOT"]


def test_config_limits_reach_exchange_info() -> None:
    cfg = {"rate_limits": {"request_weight_per_minute": 1200, "orders_per_10s": 100, "orders_per_day": 200000}}
    with running(**cfg) as sim:
        info = requests.get(sim.urls.rest + "/api/v3/exchangeInfo", timeout=5).json()
        assert [r["limit"] for r in info["rateLimits"][:3]] == [1200, 100, 200000]
        assert isinstance(SimConfig(**cfg).rate_limits.orders_per_day, int)
