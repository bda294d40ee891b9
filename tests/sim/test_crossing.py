"""A taker meets resting user orders as on Binance: better-priced user orders first, one trade for both sides, and
self-trade prevention (EXPIRE_MAKER by default) when both orders are the same account's."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sim import SimError
from sim._config import AccountSpec
from sim._errors import fmt
from sim._exchange import Exchange
from tests.sim._helpers import exchange, order

OTHER = AccountSpec(name="other", api_key="k" * 64, secret="s" * 64)


def _exchange() -> Exchange:
    return exchange(accounts=[AccountSpec(), OTHER])


def _reports(ex: Exchange, account: str) -> list[dict[str, Any]]:
    return [e for kind, who, e in ex.outbox if kind == "user" and who == account and e.get("e") == "executionReport"]


def _resting_sell(ex: Exchange, account: str, price: Decimal, qty: str = "0.01") -> Any:
    res = order(
        ex, account, symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity=qty, price=str(price)
    )
    assert res.order.status == "NEW"
    return res.order


def _inside(ex: Exchange) -> Decimal:
    """A price strictly between the synthetic bid and ask: a sell there rests and is the best ask."""
    m = ex.markets["BTCUSDT"]
    assert m.best_ask - m.best_bid > Decimal("0.02")
    return m.best_bid + Decimal("0.01")


def test_a_taker_trades_with_another_accounts_better_priced_order_first_as_one_trade() -> None:
    ex = _exchange()
    m = ex.markets["BTCUSDT"]
    ask_before = m.top("ask")
    assert ask_before is not None
    price = _inside(ex)
    maker = _resting_sell(ex, "other", price, "0.004")
    taker = order(ex, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    assert taker.order.status == "FILLED"
    assert next(t.price for t in taker.fills) == price and taker.fills[0].qty == Decimal("0.004")
    assert taker.fills[1].price == ask_before[0]  # the rest from the synthetic book
    assert maker.status == "FILLED" and maker.executed_qty == Decimal("0.004")
    [maker_trade] = [t for t in ex.trades if t.account == "other"]
    assert maker_trade.trade_id == taker.fills[0].trade_id and maker_trade.is_maker and not taker.fills[0].is_maker
    other_fill = _reports(ex, "other")[-1]
    main_fill = next(r for r in _reports(ex, "main") if r["x"] == "TRADE")
    assert other_fill["t"] == main_fill["t"] and other_fill["m"] is True and main_fill["m"] is False
    # The seller got the quote for what it sold (less its maker fee), and its base is no longer locked.
    other = ex.accounts["other"]
    assert other.bal("BTC").locked == 0
    assert other.bal("USDT").free == Decimal(100000) + price * Decimal("0.004") - maker_trade.commission
    assert ex.markets["BTCUSDT"].last_trade_id == taker.fills[-1].trade_id


def test_a_limit_maker_that_would_meet_a_resting_user_order_is_rejected() -> None:
    ex = _exchange()
    price = _inside(ex)
    _resting_sell(ex, "other", price)
    with pytest.raises(SimError, match=r"would immediately match"):
        order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.01", price=str(price))


def test_a_fill_or_kill_counts_the_resting_user_orders_liquidity() -> None:
    ex = _exchange()
    price = _inside(ex)
    _resting_sell(ex, "other", price, "0.01")
    fok = order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="FOK", quantity="0.01", price=str(price))
    assert fok.order.status == "FILLED" and [t.price for t in fok.fills] == [price]


def test_self_trade_prevention_expires_the_resting_order_by_default_and_the_taker_goes_on() -> None:
    ex = _exchange()
    m = ex.markets["BTCUSDT"]
    price = _inside(ex)
    maker = _resting_sell(ex, "main", price)
    ask = m.best_ask
    taker = order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=str(ask))
    assert maker.status == "EXPIRED_IN_MATCH" and maker.executed_qty == 0
    assert taker.order.status == "FILLED" and all(t.price == ask for t in taker.fills)
    assert ex.accounts["main"].bal("BTC").locked == 0  # the expired sell's base is free again
    [prevented] = [r for r in _reports(ex, "main") if r["x"] == "TRADE_PREVENTION"]
    assert prevented["X"] == "EXPIRED_IN_MATCH" and prevented["i"] == maker.order_id
    assert prevented["U"] == taker.order.order_id and prevented["A"] == "0.01000000" and prevented["v"] >= 1
    assert maker.query_json()["preventedQuantity"] == "0.01000000"
    assert maker not in ex.open_by_symbol["BTCUSDT"].values()


@pytest.mark.parametrize(
    ("mode", "maker_status", "taker_status"),
    [
        ("EXPIRE_TAKER", "NEW", "EXPIRED_IN_MATCH"),
        ("EXPIRE_BOTH", "EXPIRED_IN_MATCH", "EXPIRED_IN_MATCH"),
        ("NONE", "FILLED", "FILLED"),
    ],
)
def test_the_takers_prevention_mode_decides_a_self_trade(mode: str, maker_status: str, taker_status: str) -> None:
    ex = _exchange()
    price = _inside(ex)
    maker = _resting_sell(ex, "main", price)
    taker = order(
        ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=str(price),
        selfTradePreventionMode=mode,
    )  # fmt: skip
    assert (maker.status, taker.order.status) == (maker_status, taker_status)
    taker_reports = [r for r in _reports(ex, "main") if r["i"] == taker.order.order_id]
    assert taker_reports and all(r["V"] == mode for r in taker_reports)
    if mode == "NONE":
        both = [t for t in ex.trades if t.trade_id == taker.fills[0].trade_id]
        assert sorted(t.is_buyer for t in both) == [False, True]  # one trade, the account on both sides
    else:
        assert taker.fills == [] and ex.accounts["main"].bal("USDT").locked == 0
        assert taker.order.query_json()["selfTradePreventionMode"] == mode


@pytest.mark.parametrize(("mode", "code"), [("DECREMENT", -1014), ("TRANSFER", -1014), ("SOMETIMES", -1100)])
def test_prevention_modes_not_matched_here_are_refused(mode: str, code: int) -> None:
    ex = _exchange()
    with pytest.raises(SimError) as exc:
        order(
            ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="60000",
            selfTradePreventionMode=mode,
        )  # fmt: skip
    assert exc.value.code == code


def test_a_quote_amount_market_order_spends_its_quote_across_user_orders_and_the_book() -> None:
    ex = _exchange()
    price = _inside(ex)
    _resting_sell(ex, "other", price, "0.001")
    res = order(ex, symbol="BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="1000")
    assert res.order.status == "FILLED" and res.fills[0].price == price
    assert res.order.cum_quote <= Decimal(1000) and res.order.orig_qty == res.order.executed_qty


@pytest.mark.parametrize("params", [{"quantity": "0.01"}, {"quoteOrderQty": "1000"}], ids=["quantity", "quote-amount"])
def test_a_market_taker_expired_by_its_own_prevention_mode_reports_the_match_it_prevented(
    params: dict[str, str],
) -> None:
    ex = _exchange()
    price = _inside(ex)
    maker = _resting_sell(ex, "main", price, "0.004")
    taker = order(ex, symbol="BTCUSDT", side="BUY", type="MARKET", selfTradePreventionMode="EXPIRE_TAKER", **params)
    assert taker.order.status == "EXPIRED_IN_MATCH" and taker.fills == [] and maker.status == "NEW"
    [prevented] = [r for r in _reports(ex, "main") if r["x"] == "TRADE_PREVENTION"]
    assert prevented["i"] == taker.order.order_id and prevented["U"] == maker.order_id
    assert (prevented["pL"], prevented["A"]) == (fmt(price), "0.00400000")
