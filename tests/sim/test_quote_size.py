"""``cross_fills = "quote_size"``: paper fills bounded by the size the venue shows at its best price.

Before: the paper exchange knew the venue's best prices only. A resting paper order filled completely the moment
the venue's opposite quote reached it, whatever its size, and a paper market order walked a synthetic book
(about 2,000 × the minimum notional at the top) instead of the venue's real top quantity.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sim._exchange import Exchange
from tests.sim._helpers import NOW, dec, exchange, order

D = Decimal
SYM = "BTCUSDT"


def paper(**kw: Any) -> Exchange:
    """A pure paper exchange on BTCUSDT at 60,000 (tick 0.01, lot step 0.00001) in quote_size mode."""
    return exchange(symbols=[SYM], start_prices={SYM: D(60000)}, seed=1, **({"cross_fills": "quote_size"} | kw))


def quote(ex: Exchange, bid: str, ask: str, bid_qty: str | None = None, ask_qty: str | None = None) -> None:
    """A venue bookTicker frame: best bid / ask and the quantities there."""
    ex.set_quote(
        SYM,
        D(bid),
        D(ask),
        NOW,
        bid_qty=None if bid_qty is None else D(bid_qty),
        ask_qty=None if ask_qty is None else D(ask_qty),
    )


def limit(ex: Exchange, side: str, price: str, qty: str) -> Any:
    return order(ex, symbol=SYM, side=side, type="LIMIT", timeInForce="GTC", quantity=qty, price=price).order


def market(ex: Exchange, side: str, qty: str) -> list[tuple[Decimal, Decimal]]:
    res = order(ex, symbol=SYM, side=side, type="MARKET", quantity=qty)
    return [(t.price, t.qty) for t in res.fills]


def fills(ex: Exchange, o: Any) -> list[tuple[Decimal, Decimal]]:
    return [(t.price, t.qty) for t in ex.trades if t.order_id == o.order_id]


def test_a_resting_buy_larger_than_the_venues_ask_size_fills_only_that_size() -> None:
    ex = paper()
    buy = limit(ex, "BUY", "59900", "1")
    quote(ex, "59890", "59895", "3", "0.3")  # the venue's ask reaches the limit with 0.3 on show
    assert fills(ex, buy) == [(D(59900), D("0.3"))] and buy.status == "PARTIALLY_FILLED"
    quote(ex, "59890", "59895", "3", "0.3")  # the same frame again: nothing new at that price
    quote(ex, "59889", "59895", "2", "0.3")  # the bid moves, the ask stays: what was taken there stays taken
    assert buy.executed_qty == D("0.3")
    quote(ex, "59889", "59895", "2", "0.5")  # a larger size at the same price offers only the increase
    assert buy.executed_qty == D("0.5")
    quote(ex, "59889", "59895", "2", "0.1")  # it shrank below what was taken: used up
    quote(ex, "59889", "59895", "2", "0.25")  # …and only what came since is new
    assert buy.executed_qty == D("0.65")
    quote(ex, "59889", "59894", "2", "0.4")  # a new ask price: its whole size
    assert buy.status == "FILLED" and buy.executed_qty == D(1)
    assert fills(ex, buy)[-1] == (D(59900), D("0.35"))
    assert all(t.is_maker for t in ex.trades)
    assert (dec(ex.book_ticker(SYM)["a"]), dec(ex.book_ticker(SYM)["A"])) == (D(59894), D("0.05"))  # what is left


def test_a_resting_sell_larger_than_the_venues_bid_size_fills_only_that_size() -> None:
    ex = paper()
    sell = limit(ex, "SELL", "60100", "1.5")
    quote(ex, "60105", "60106", "0.4", "2")
    assert fills(ex, sell) == [(D(60100), D("0.4"))] and sell.locked == D("1.1")
    quote(ex, "60100", "60101", "0.7", "2")  # the bid at the limit itself still reaches it
    assert sell.executed_qty == D("1.1")
    quote(ex, "60099.99", "60101", "5", "2")  # below the limit: no fill whatever the size
    assert sell.executed_qty == D("1.1") and sell.status == "PARTIALLY_FILLED"


def test_crossed_orders_share_the_size_in_price_time_priority() -> None:
    ex = paper()
    first = limit(ex, "BUY", "59900", "0.3")
    better = limit(ex, "BUY", "59910", "0.3")
    last = limit(ex, "BUY", "59900", "0.3")
    quote(ex, "59890", "59895", "1", "0.5")
    # The best price first, then the oldest at a price.
    assert [o.executed_qty for o in (better, first, last)] == [D("0.3"), D("0.2"), D(0)]
    quote(ex, "59890", "59895", "1", "0.7")
    assert [o.executed_qty for o in (better, first, last)] == [D("0.3"), D("0.3"), D("0.1")]


def test_the_size_is_shared_in_whole_lot_steps() -> None:
    ex = paper()
    buy = limit(ex, "BUY", "59900", "1")
    quote(ex, "59890", "59895", "1", "0.123456789")  # a size finer than the lot step (0.00001)
    assert buy.executed_qty == D("0.12345")
    assert ex.markets[SYM].venue_left("ask") == 0  # the odd 0.000006789 is no step: nothing left there
    assert market(ex, "BUY", "0.001")[0][0] > D(59895)
    other = limit(ex, "BUY", "59900", "0.1")
    quote(ex, "59890", "59894", "1", "0.0000199")
    assert other.executed_qty == 0 and buy.executed_qty == D("0.12346")  # whole steps, in priority order


def test_a_market_order_takes_the_venues_top_size_first_then_the_synthetic_levels() -> None:
    ex = paper()
    quote(ex, "59990", "60000", "1", "0.25")
    levels = list(ex.markets[SYM].side_levels("ask"))
    (_, top, top_qty), (_, behind, _) = levels[0], levels[1]
    assert (top, top_qty) == (D(60000), D("0.25"))
    assert market(ex, "BUY", "0.3") == [(D(60000), D("0.25")), (behind, D("0.05"))]
    # The next taker does not get the venue's size again: the top of the paper book is the synthetic level now.
    assert market(ex, "BUY", "0.1") == [(behind, D("0.1"))]
    assert dec(ex.book_ticker(SYM)["a"]) == behind
    quote(ex, "59990", "60000", "1", "0.3")  # the size grew by 0.05 at the same price
    assert market(ex, "BUY", "0.1") == [(D(60000), D("0.05")), (behind, D("0.05"))]
    quote(ex, "59990", "60000.01", "1", "0.2")  # a new price: a new size
    assert market(ex, "BUY", "0.1") == [(D("60000.01"), D("0.1"))]
    assert market(ex, "SELL", "1.5")[0] == (D(59990), D(1))


def test_a_resting_order_and_a_taker_draw_on_the_same_size() -> None:
    ex = paper()
    quote(ex, "59990", "60000", "1", "0.25")
    buy = limit(ex, "BUY", "59995", "0.2")  # rests below the ask
    quote(ex, "59990", "59995", "1", "0.25")  # the ask comes down to it: 0.2 of the 0.25
    assert buy.status == "FILLED"
    assert market(ex, "BUY", "0.1")[0] == (D(59995), D("0.05"))
    taker = limit(ex, "BUY", "59995", "0.1")  # a marketable limit gets nothing more at that price, and rests
    assert taker.executed_qty == 0 and taker.is_open
    quote(ex, "59990", "59995", "1", "0.3")
    assert fills(ex, taker) == [(D(59995), D("0.05"))]


def test_a_venue_showing_nothing_at_its_best_price_fills_nothing() -> None:
    ex = paper()
    buy = limit(ex, "BUY", "59900", "1")
    quote(ex, "59890", "59895", "1", "0")
    assert buy.executed_qty == 0


@pytest.mark.parametrize("mode", ["full", "quote_size"])
def test_a_quote_without_sizes_keeps_the_old_behaviour(mode: str) -> None:
    ex = paper(cross_fills=mode)
    buy = limit(ex, "BUY", "59900", "1")
    quote(ex, "59890", "59895")  # no size: the order fills completely, as before
    assert buy.status == "FILLED"
    _, _, top_qty = next(iter(ex.markets[SYM].side_levels("ask")))
    assert top_qty > D("0.16")  # the synthetic top (2,000 × the 5 USDT minimum notional)


def test_the_full_mode_ignores_sizes_and_size_only_frames() -> None:
    ex = paper(cross_fills="full")
    buy = limit(ex, "BUY", "59900", "1")
    quote(ex, "59890", "59895", "1", "0.3")
    assert buy.status == "FILLED"  # the whole order, not the 0.3 on show
    m = ex.markets[SYM]
    before = (m.update_id, len(ex.trades), m.top("ask"))
    quote(ex, "59890", "59895", "1", "0.5")  # a size-only frame: nothing to follow in this mode
    assert (m.update_id, len(ex.trades), m.top("ask")) == before


def test_a_size_only_frame_keeps_the_synthetic_levels_taken_and_prints_no_trade() -> None:
    ex = paper()
    quote(ex, "59990", "60000", "1", "0.25")
    (_, behind, behind_qty) = list(ex.markets[SYM].side_levels("ask"))[1]
    market(ex, "BUY", "0.35")
    trades, update = len(ex.trades), ex.markets[SYM].update_id
    quote(ex, "59990", "60000", "1", "0.25")  # only the venue's sizes, unchanged even
    assert len(ex.trades) == trades  # no synthetic flow printed: the price did not move
    assert ex.markets[SYM].update_id == update + 1
    assert list(ex.markets[SYM].side_levels("ask"))[1] == (1, behind, behind_qty - D("0.1"))


def test_set_price_returns_to_the_synthetic_book() -> None:
    ex = paper()
    quote(ex, "59990", "60000", "1", "0.25")
    ex.set_price(SYM, D(60000), NOW)
    assert ex.markets[SYM].venue_top == {}
    buy = limit(ex, "BUY", "59900", "1")
    ex.set_price(SYM, D(59800), NOW)
    assert buy.status == "FILLED"  # no venue size known: as ``full``


def test_negative_sizes_are_refused() -> None:
    ex = paper()
    with pytest.raises(ValueError, match="non-negative"):
        quote(ex, "59990", "60000", "1", "-0.1")
