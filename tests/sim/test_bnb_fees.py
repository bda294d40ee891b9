"""Commissions paid in BNB (`AccountSpec(bnb_fees=True)`): the fill's fee in BNB at a discount while the free BNB
covers it, the received asset credited in full; else the standard fee in the received asset. Balances and every
wire shape (FULL fills, myTrades, executionReport n/N, outboundAccountPosition) agree."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import AccountSpec, SimConfig
from sim._exchange import Exchange
from sim._orders import Trade
from tests.sim._helpers import NOW, dec, make_ccxt, running
from tests.sim.test_auth import _signed

EIGHT = Decimal("0.00000001")
RATE = Decimal("0.001")


def _ex(balances: dict[str, str] | None = None, *, bnb: bool = True, **kw: Any) -> Exchange:
    kw.setdefault("symbols", ["BTCUSDT", "BNBUSDT"])
    bal = {"USDT": Decimal(100_000), "BTC": Decimal(2), "BNB": Decimal(50)}
    if balances is not None:
        bal = {k: Decimal(v) for k, v in balances.items()}
    return Exchange(SimConfig(accounts=[AccountSpec(balances=bal, bnb_fees=bnb)], **kw))


def _place(ex: Exchange, **params: str) -> list[Trade]:
    return ex.place_order(ex.accounts["main"], params, NOW).fills


def _free(ex: Exchange, asset: str) -> Decimal:
    return ex.accounts["main"].bal(asset).free


def _bnb_fee(quote_qty: Decimal, bnb_price: Decimal, rate: Decimal = RATE) -> Decimal:
    return (quote_qty * rate * Decimal("0.75") / bnb_price).quantize(EIGHT, ROUND_HALF_UP)


def _user_events(ex: Exchange, kind: str) -> list[dict[str, Any]]:
    return [ev for _, _, ev in ex.outbox if ev["e"] == kind]


def test_off_by_default_the_fee_is_the_received_asset_and_bnb_is_untouched() -> None:
    ex = _ex(bnb=False)
    [fill] = _place(ex, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    assert (fill.commission, fill.commission_asset) == (Decimal("0.01") * RATE, "BTC")
    assert _free(ex, "BNB") == 50 and _free(ex, "BTC") == Decimal(2) + Decimal("0.01") * (1 - RATE)


def test_a_buy_pays_in_bnb_and_receives_all_it_bought() -> None:
    ex = _ex()
    bnb_price = ex.markets["BNBUSDT"].mid
    fills = _place(ex, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.5")
    assert len(fills) > 1  # it walked the book: each level is a fill with its own fee
    for f in fills:
        assert (f.commission, f.commission_asset) == (_bnb_fee(f.quote_qty, bnb_price), "BNB")
    assert _free(ex, "BTC") == Decimal("2.5")  # nothing taken from what was bought
    assert _free(ex, "BNB") == 50 - sum(f.commission for f in fills)
    assert _free(ex, "USDT") == 100_000 - sum(f.quote_qty for f in fills)
    # every wire shape says the same
    reports = [ev for ev in _user_events(ex, "executionReport") if ev["x"] == "TRADE"]
    assert [(r["t"], r["n"], r["N"]) for r in reports] == [(f.trade_id, f"{f.commission:.8f}", "BNB") for f in fills]
    assert [(j["commission"], j["commissionAsset"]) for j in (f.fill_json() for f in fills)] == [
        (f"{f.commission:.8f}", "BNB") for f in fills
    ]
    assert {t.my_trade_json()["commissionAsset"] for t in ex.trades} == {"BNB"}
    [position] = _user_events(ex, "outboundAccountPosition")
    balances = {b["a"]: (dec(b["f"]), dec(b["l"])) for b in position["B"]}
    assert balances == {a: (_free(ex, a), Decimal(0)) for a in ("BNB", "BTC", "USDT")}


def test_a_sell_pays_in_bnb_and_receives_the_whole_quote_amount() -> None:
    ex = _ex()
    [fill] = _place(ex, symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01")
    assert fill.commission_asset == "BNB" and fill.commission == _bnb_fee(fill.quote_qty, ex.markets["BNBUSDT"].mid)
    assert _free(ex, "USDT") == 100_000 + fill.quote_qty and _free(ex, "BTC") == Decimal("1.99")


def test_the_bnb_price_follows_the_bnb_book() -> None:
    ex = _ex()
    ex.set_price("BNBUSDT", Decimal(300), NOW)
    [fill] = _place(ex, symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01")
    assert fill.commission == _bnb_fee(fill.quote_qty, Decimal(300))


def test_a_configured_bnb_price_serves_when_no_bnb_book_is_simulated() -> None:
    ex = _ex(symbols=["BTCUSDT"], bnb_prices={"USDT": Decimal(500)})
    [fill] = _place(ex, symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01")
    assert (fill.commission, fill.commission_asset) == (_bnb_fee(fill.quote_qty, Decimal(500)), "BNB")


def test_the_maker_rate_is_discounted_for_a_resting_order() -> None:
    account = AccountSpec(bnb_fees=True, maker_commission=Decimal("0.0002"))
    ex = Exchange(SimConfig(symbols=["BTCUSDT", "BNBUSDT"], accounts=[account]))
    limit = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01"}
    res = ex.place_order(ex.accounts["main"], limit | {"price": "60000"}, NOW)
    trade = ex.fill_order(res.order, None, NOW)
    assert trade.is_maker and trade.commission == _bnb_fee(trade.quote_qty, Decimal(600), Decimal("0.0002"))
    assert ex.accounts["main"].bal("USDT").locked == 0 and _free(ex, "BTC") == Decimal("2.01")


def test_bnb_running_out_mid_order_switches_the_later_fills_to_the_received_asset() -> None:
    # Enough BNB for the first level's fee, not for the second's: never part of a fee in BNB.
    ex = _ex({"USDT": "100000", "BNB": "0.02"})
    fills = _place(ex, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.5")
    assets = [f.commission_asset for f in fills]
    assert assets == ["BNB", "BTC", "BTC"], assets
    assert fills[1].commission == (fills[1].qty * RATE).quantize(EIGHT)  # the standard rate, no discount
    assert _free(ex, "BNB") == Decimal("0.02") - fills[0].commission
    assert _free(ex, "BTC") == Decimal("0.5") - fills[1].commission - fills[2].commission
    reports = [ev for ev in _user_events(ex, "executionReport") if ev["x"] == "TRADE"]
    assert [r["N"] for r in reports] == assets


def test_without_bnb_a_sell_pays_in_the_quote_asset() -> None:
    ex = _ex({"USDT": "0", "BTC": "1"})
    [fill] = _place(ex, symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01")
    assert fill.commission_asset == "USDT" and _free(ex, "USDT") == fill.quote_qty - fill.commission
    assert "BNB" not in ex.accounts["main"].balances  # asking for BNB did not add an empty balance


def test_bnb_locked_in_an_order_does_not_pay_fees() -> None:
    ex = _ex({"USDT": "100000", "BNB": "1"})
    _place(ex, symbol="BNBUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="1", price="700")
    [fill] = _place(ex, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    assert fill.commission_asset == "BTC"


def test_bnb_symbols_pay_in_bnb_the_bought_or_remaining_bnb_included() -> None:
    ex = _ex({"USDT": "100000", "ETH": "10"}, symbols=["ETHBNB", "BNBUSDT"])
    [buy] = _place(ex, symbol="BNBUSDT", side="BUY", type="MARKET", quantity="1")  # no BNB but what it buys
    assert buy.commission_asset == "BNB" and buy.commission == (Decimal(1) * RATE * Decimal("0.75")).quantize(EIGHT)
    assert _free(ex, "BNB") == 1 - buy.commission
    [sell] = _place(ex, symbol="ETHBNB", side="SELL", type="MARKET", quantity="0.1")  # receives BNB
    assert sell.commission_asset == "BNB" and sell.commission == _bnb_fee(sell.quote_qty, Decimal(1))
    assert _free(ex, "BNB") == 1 - buy.commission + sell.quote_qty - sell.commission
    everything = _free(ex, "BNB").quantize(ex.specs["BNBUSDT"].step_size, ROUND_DOWN)
    [last] = _place(ex, symbol="BNBUSDT", side="SELL", type="MARKET", quantity=str(everything))
    # What is left of the BNB after the sale (a dust) cannot pay the sale's fee: USDT pays it.
    assert last.commission_asset == "USDT" and _free(ex, "BNB") < (last.qty * RATE * Decimal("0.75"))


def test_config_wants_a_bnb_price_for_every_quote_and_no_double_source() -> None:
    with pytest.raises(ValueError, match="no BNB price"):
        SimConfig(symbols=["BTCUSDT"], accounts=[AccountSpec(bnb_fees=True)])
    with pytest.raises(ValueError, match="BNBUSDT is simulated"):
        SimConfig(symbols=["BTCUSDT", "BNBUSDT"], bnb_prices={"USDT": Decimal(600)})
    with pytest.raises(ValueError, match="takes no price"):
        SimConfig(symbols=["BTCUSDT"], bnb_prices={"BNB": Decimal(1), "USDT": Decimal(600)})
    SimConfig(symbols=["BTCUSDT", "ETHBTC", "BNBUSDT", "BNBBTC"], accounts=[AccountSpec(bnb_fees=True)])


@settings(max_examples=40, deadline=None)
@given(
    bnb=st.decimals(min_value=0, max_value="0.1", places=4),
    sides=st.lists(st.sampled_from(["BUY", "SELL"]), min_size=1, max_size=6),
    qty=st.sampled_from(["0.001", "0.05", "0.3"]),
)
def test_balances_are_what_the_fills_say(bnb: Decimal, sides: list[str], qty: str) -> None:
    ex = _ex({"USDT": "1000000", "BTC": "5", "BNB": str(bnb)}, symbols=["BTCUSDT"], bnb_prices={"USDT": Decimal(600)})
    for side in sides:
        _place(ex, symbol="BTCUSDT", side=side, type="MARKET", quantity=qty)
    fees: dict[str, Decimal] = {}
    for t in ex.trades:
        fees[t.commission_asset] = fees.get(t.commission_asset, Decimal(0)) + t.commission
        assert t.commission_asset in ("BNB", "BTC" if t.is_buyer else "USDT")
    bought = sum((t.qty if t.is_buyer else -t.qty for t in ex.trades), Decimal(0))
    paid = sum((t.quote_qty if t.is_buyer else -t.quote_qty for t in ex.trades), Decimal(0))
    assert _free(ex, "BTC") == 5 + bought - fees.get("BTC", 0)
    assert _free(ex, "USDT") == 1_000_000 - paid - fees.get("USDT", 0)
    assert _free(ex, "BNB") == bnb - fees.get("BNB", 0) >= 0


def test_rest_shows_the_discount_and_ccxt_reads_bnb_fees() -> None:
    with running(symbols=["BTCUSDT", "BNBUSDT"], accounts=[AccountSpec(bnb_fees=True)]) as sim:
        acc = sim.accounts[0]

        def call(method: str, path: str, **params: str) -> Any:
            return _signed(sim, method, "/api/v3/" + path, params, acc.api_key, acc.secret).json()

        rates = call("GET", "account/commission", symbol="BTCUSDT")
        assert rates["standardCommission"]["taker"] == "0.00100000"
        assert rates["discount"] == {"enabledForAccount": True, "enabledForSymbol": True, "discountAsset": "BNB",
                                     "discount": "0.75000000"}  # fmt: skip
        assert set(rates) == {"symbol", "standardCommission", "specialCommission", "taxCommission", "discount"}
        assert call("GET", "account/commission")["code"] == -1102
        test = call("POST", "order/test", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
                    computeCommissionRates="true")  # fmt: skip
        assert test["discount"]["enabledForAccount"] is True and test["discount"]["discount"] == "0.25000000"
        client = make_ccxt(sim)
        order = client.create_order("BTC/USDT", "market", "buy", 0.01)
        assert {f["fee"]["currency"] for f in order["trades"]} == {"BNB"}
        [trade] = client.fetch_my_trades("BTC/USDT")
        assert trade["fee"]["currency"] == "BNB"
        assert dec(trade["fee"]["cost"]) == _bnb_fee(dec(trade["cost"]), Decimal(600))
        balance = client.fetch_balance()
        assert dec(balance["BTC"]["free"]) == Decimal("2.01") and dec(balance["BNB"]["free"]) < 50
