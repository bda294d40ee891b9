"""The real ccxt (sync and async) against the simulator over loopback."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from sim import AccountSpec, SimConfig, Simulator
from tests.sim._helpers import dec, make_ccxt, running


def test_load_markets_lean_and_default_options() -> None:
    with running() as sim:
        lean = make_ccxt(sim, lean=True)
        lean.load_markets()
        btc = lean.markets["BTC/USDT"]
        assert btc["precision"]["amount"] == 1e-05 and btc["precision"]["price"] == 0.01
        assert btc["limits"]["cost"]["min"] == 5.0
        assert btc["active"] is True
        default = make_ccxt(sim, lean=False)
        default.load_markets()  # sapi currencies, margin pairs, fapi/dapi exchangeInfo all answered
        assert {"BTC/USDT", "ETH/USDT", "ETH/BTC"} <= set(default.markets)
        assert lean.fetch_time() > 0


def test_sync_order_lifecycle_by_id_and_client_id() -> None:
    with running() as sim:
        ex = make_ccxt(sim)
        ex.load_markets()
        o = ex.create_order("BTC/USDT", "limit", "buy", 0.01, 60000, {"clientOrderId": "my-id-1"})
        assert (o["status"], o["clientOrderId"], o["price"], o["amount"]) == ("open", "my-id-1", 60000.0, 0.01)
        assert ex.last_response_headers["X-MBX-ORDER-COUNT-10S"] == "1"
        assert ex.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "20"  # exchangeInfo; the order cost 0
        assert ex.fetch_order(o["id"], "BTC/USDT")["clientOrderId"] == "my-id-1"
        assert ex.fetch_order(None, "BTC/USDT", {"clientOrderId": "my-id-1"})["id"] == o["id"]
        assert [x["id"] for x in ex.fetch_open_orders("BTC/USDT")] == [o["id"]]
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
            ex.create_order("BTC/USDT", "limit", "buy", 0.01, 60000, {"clientOrderId": "my-id-1"})
        cancel = ex.cancel_order(None, "BTC/USDT", {"clientOrderId": "my-id-1"})
        assert cancel["status"] == "canceled" and cancel["clientOrderId"] != "my-id-1"
        with pytest.raises(ccxt.OrderNotFound):
            ex.cancel_order(o["id"], "BTC/USDT")
        with pytest.raises(ccxt.OrderNotFound):
            ex.fetch_order("424242", "BTC/USDT")
        m = ex.create_order("BTC/USDT", "market", "buy", 0.5, None, {"clientOrderId": "mkt-1"})
        assert m["status"] == "closed" and m["filled"] == 0.5 and len(m["trades"]) >= 1
        assert m["fee"]["currency"] == "BTC"
        q = ex.create_order("ETH/USDT", "market", "sell", 0.1, 3500)  # → quoteOrderQty=350
        assert q["status"] == "closed" and q["cost"] <= 350
        trades = ex.fetch_my_trades("BTC/USDT")
        assert sum(t["amount"] for t in trades) == pytest.approx(0.5)
        assert all(t["side"] == "buy" and t["takerOrMaker"] == "taker" for t in trades)
        bal = ex.fetch_balance()
        assert bal["BTC"]["free"] == pytest.approx(2.5 - m["fee"]["cost"])
        assert bal["USDT"]["used"] == 0
        restrictions = ex.sapi_get_account_apirestrictions()
        assert restrictions["enableWithdrawals"] is False and restrictions["enableReading"] is True
        ledger = sim.control.ledger()
        assert {o["clientOrderId"] for o in ledger["orders"]} >= {"my-id-1", "mkt-1"}


def test_ccxt_errors_map_like_binance() -> None:
    with running() as sim:
        ex = make_ccxt(sim)
        ex.load_markets()
        with pytest.raises(ccxt.InsufficientFunds):
            ex.create_order("BTC/USDT", "limit", "buy", 5, 60000)
        with pytest.raises(ccxt.InvalidOrder):  # PERCENT_PRICE_BY_SIDE
            ex.create_order("BTC/USDT", "limit", "buy", 0.01, 1000)
        with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
            ex.create_order("BTC/USDT", "limit", "buy", 0.00001, 60000)
        with pytest.raises(ccxt.OrderImmediatelyFillable):
            ex.create_order("BTC/USDT", "limit", "buy", 0.01, 70000, {"postOnly": True})
        with pytest.raises(ccxt.InvalidOrder):  # stop orders are not in exchangeInfo orderTypes: refused by ccxt
            ex.create_order("BTC/USDT", "limit", "buy", 0.01, 60000, {"triggerPrice": 59000})
        bad = make_ccxt(sim)
        bad.secret = "wrong-secret"
        with pytest.raises(ccxt.AuthenticationError):
            bad.fetch_balance()
        unknown = make_ccxt(sim)
        unknown.apiKey = "nosuchkey"
        with pytest.raises(ccxt.AuthenticationError):
            unknown.fetch_balance()


def test_rsa_and_ed25519_keys_with_ccxt(rsa_pem: str, ed25519_pem: str) -> None:
    cfg = SimConfig(
        accounts=[
            AccountSpec(name="rsa", api_key="rsakey1", secret=rsa_pem),
            AccountSpec(name="ed", api_key="edkey1", secret=ed25519_pem),
        ]
    )
    with Simulator(cfg) as sim:
        for i in range(2):
            ex = make_ccxt(sim, account=i)
            ex.load_markets()
            o = ex.create_order("ETH/BTC", "limit", "buy", 0.1, 0.05, {"clientOrderId": f"k-{i}"})
            assert o["status"] == "open"
            assert ex.fetch_balance()["BTC"]["used"] == pytest.approx(0.005)


def test_async_ccxt() -> None:
    async def main(sim: Simulator) -> None:
        ex = make_ccxt(sim, module=ccxt_async)
        try:
            await ex.load_markets()
            orders = await asyncio.gather(
                *[
                    ex.create_order("BTC/USDT", "limit", "sell", 0.001, 66000 + i, {"clientOrderId": f"a-{i}"})
                    for i in range(5)
                ]
            )
            assert {o["status"] for o in orders} == {"open"}
            opened = await ex.fetch_open_orders("BTC/USDT")
            assert len(opened) == 5
            sim.control.fill_order("BTCUSDT", client_order_id="a-0", quantity="0.0004")
            got = await ex.fetch_order(None, "BTC/USDT", {"clientOrderId": "a-0"})
            assert got["filled"] == pytest.approx(0.0004) and got["status"] == "open"
            trades = await ex.fetch_my_trades("BTC/USDT")
            assert trades[0]["takerOrMaker"] == "maker" and trades[0]["side"] == "sell"
            await ex.cancel_all_orders("BTC/USDT")
            assert await ex.fetch_open_orders("BTC/USDT") == []
        finally:
            await ex.close()

    with running() as sim:
        asyncio.run(main(sim))
        assert dec(sim.control.ledger()["balances"]["BTC"]["locked"]) == Decimal(0)
