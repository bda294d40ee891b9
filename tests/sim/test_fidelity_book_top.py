"""The top of the book once taker orders have emptied its first synthetic level (LIMIT_MAKER check, bookTicker)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from sim import SimError
from sim._exchange import Exchange
from tests.sim._helpers import dec, exchange, order, running
from tests.sim.test_auth import _signed


def _empty_top(ex: Exchange, side: str) -> tuple[Decimal, Decimal, Decimal]:
    """Take the whole first level of ``side`` ("ask": market BUY); returns (old top, next level, its qty)."""
    m = ex.markets["BTCUSDT"]
    levels = list(m.side_levels(side))
    (_, old, qty0), (_, nxt, qty1) = levels[0], levels[1]
    res = order(ex, symbol="BTCUSDT", side="BUY" if side == "ask" else "SELL", type="MARKET", quantity=str(qty0))
    assert [(t.price, t.qty) for t in res.fills] == [(old, qty0)]
    return old, nxt, qty1


def test_limit_maker_buy_between_an_emptied_level_and_the_next_rests() -> None:
    ex = exchange(symbols=["BTCUSDT"])
    old, nxt, _ = _empty_top(ex, "ask")
    inside = str(old + (nxt - old) / 2)
    # A LIMIT GTC at that price takes nothing: the emptied level is not liquidity any more.
    gtc = order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price=inside)
    assert gtc.fills == [] and gtc.order.status == "NEW"
    maker = order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.001", price=inside)
    assert maker.order.status == "NEW"
    with pytest.raises(SimError, match="would immediately match and take"):
        order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.001", price=str(nxt))


def test_limit_maker_sell_between_an_emptied_level_and_the_next_rests() -> None:
    ex = exchange(symbols=["BTCUSDT"])
    old, nxt, _ = _empty_top(ex, "bid")
    inside = str(nxt + (old - nxt) / 2)
    maker = order(ex, symbol="BTCUSDT", side="SELL", type="LIMIT_MAKER", quantity="0.001", price=inside)
    assert maker.order.status == "NEW"
    with pytest.raises(SimError, match="would immediately match and take"):
        order(ex, symbol="BTCUSDT", side="SELL", type="LIMIT_MAKER", quantity="0.001", price=str(nxt))


def test_book_ticker_skips_an_emptied_level() -> None:
    ex = exchange(symbols=["BTCUSDT"])
    _, nxt_ask, qty_ask = _empty_top(ex, "ask")
    _, nxt_bid, qty_bid = _empty_top(ex, "bid")
    bt = ex.book_ticker("BTCUSDT")
    assert (dec(bt["a"]), dec(bt["A"])) == (nxt_ask, qty_ask)
    assert (dec(bt["b"]), dec(bt["B"])) == (nxt_bid, qty_bid)


def test_rest_book_ticker_and_24hr_agree_with_depth_after_the_top_is_taken() -> None:
    with running(symbols=["BTCUSDT"]) as sim:
        acc = sim.accounts[0]
        book = requests.get(sim.urls.rest + "/api/v3/depth", params={"symbol": "BTCUSDT"}, timeout=5).json()
        price0, qty0 = book["asks"][0]
        r = _signed(
            sim,
            "POST",
            "/api/v3/order",
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": qty0},
            acc.api_key,
            acc.secret,
        )
        assert r.status_code == 200 and r.json()["fills"][0]["price"] == price0
        book = requests.get(sim.urls.rest + "/api/v3/depth", params={"symbol": "BTCUSDT"}, timeout=5).json()
        assert book["asks"][0][0] != price0
        bt = requests.get(sim.urls.rest + "/api/v3/ticker/bookTicker", params={"symbol": "BTCUSDT"}, timeout=5).json()
        assert [bt["askPrice"], bt["askQty"]] == book["asks"][0]
        assert [bt["bidPrice"], bt["bidQty"]] == book["bids"][0]
        t24 = requests.get(sim.urls.rest + "/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"}, timeout=5).json()
        assert [t24["askPrice"], t24["askQty"]] == book["asks"][0]
