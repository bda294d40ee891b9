"""The paper price feed carries the venue's quantities at its best bid / ask (bookTicker ``B`` / ``A``, REST
``bidQty`` / ``askQty``).

Before: the feed kept the prices only and dropped every frame whose prices had not changed, so the paper book could
not know how much the venue offered at its best price. A sink whose ``set_quote`` takes ``bid_qty`` / ``ask_qty``
now gets them, quantity-only changes included; a sink that takes prices only is served as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest

from sim import FeedError, PublicMarket, PublicPriceFeed, Quote, SimConfig, Simulator
from sim._exchange import Exchange
from sim._feed_base import parse_book_tickers, takes_sizes
from tests.sim._helpers import NOW
from tests.sim.test_price_source import venue_config

D = Decimal
SYM = "BTCUSDT"
WAIT_S = 10.0


class PlainSink:
    """A sink of the prices only (the original `QuoteSink`)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def set_quote(self, symbol: str, bid: Decimal, ask: Decimal) -> None:
        self.calls.append((symbol, bid, ask))


class PaperSink:
    """A sink with the quantities, into a pure paper exchange in quote_size mode (what the simulator's book does)."""

    def __init__(self, paper: Exchange) -> None:
        self.paper = paper
        self.calls: list[tuple[Any, ...]] = []

    def set_quote(
        self, symbol: str, bid: Decimal, ask: Decimal, *, bid_qty: Decimal | None = None, ask_qty: Decimal | None = None
    ) -> None:
        self.calls.append((symbol, bid, ask, bid_qty, ask_qty))
        self.paper.set_quote(symbol, bid, ask, NOW, bid_qty=bid_qty, ask_qty=ask_qty)


@pytest.fixture
def venue() -> Iterator[Simulator]:
    with Simulator(venue_config(symbols=["BTCUSDT"], start_prices={SYM: D(60000)})) as simulator:
        yield simulator


def venue_quote(venue: Simulator) -> Quote:
    """The venue's best bid / ask with the quantities there, as its bookTicker says."""
    bt = venue.core.exchange.book_ticker(SYM)
    return Quote(*(D(str(bt[k])) for k in ("b", "a", "B", "A")))


def paper_exchange(market: PublicMarket) -> Exchange:
    return Exchange(
        SimConfig(
            symbols=[SYM],
            symbol_info={SYM: dict(market.symbol_info[SYM])},
            start_prices={SYM: (market.quotes[SYM].bid + market.quotes[SYM].ask) / 2},
            cross_fills="quote_size",
        )
    )


@contextlib.contextmanager
def feeding(feed: PublicPriceFeed, sink: object) -> Iterator[None]:
    """Run ``feed`` into ``sink`` on a loop of its own (as the simulator does on its loop) until the block ends."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(feed.run(sink))  # type: ignore[arg-type]

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.close()

    thread = threading.Thread(target=run, name="test-feed", daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(WAIT_S)
        assert not thread.is_alive()


def feed_for(venue: Simulator, transport: str, market: PublicMarket) -> PublicPriceFeed:
    return PublicPriceFeed(
        venue.urls.rest,
        [SYM],
        stream_url=venue.urls.stream,
        transport=transport,  # type: ignore[arg-type]
        poll_interval_s=0.02,
        stale_after_s=5.0,
        initial=market.quotes,
    )


# ------------------------------------------------------------------------------------------ pure parts
def test_rest_book_tickers_carry_the_quantities() -> None:
    body = orjson.dumps(
        [
            {"symbol": "BTCUSDT", "bidPrice": "1.0", "bidQty": "2.5", "askPrice": "1.1", "askQty": "0.125"},
            {"symbol": "ETHUSDT", "bidPrice": "3", "askPrice": "4"},  # no quantities: None, as before
        ]
    )
    quotes = parse_book_tickers(body, ["BTCUSDT", "ETHUSDT"])
    assert quotes["BTCUSDT"] == Quote(D("1.0"), D("1.1"), D("2.5"), D("0.125"))
    assert quotes["ETHUSDT"] == Quote(D(3), D(4))
    bad = orjson.dumps({"symbol": "BTCUSDT", "bidPrice": "1", "bidQty": "-1", "askPrice": "2", "askQty": "1"})
    with pytest.raises(FeedError, match="BTCUSDT bidQty is not a usable quantity"):
        parse_book_tickers(bad, ["BTCUSDT"])


def test_a_sink_takes_the_quantities_when_its_set_quote_accepts_them() -> None:
    class Kwargs:
        def set_quote(self, symbol: str, bid: Decimal, ask: Decimal, **kw: Any) -> None: ...

    class OneSize:
        def set_quote(self, symbol: str, bid: Decimal, ask: Decimal, bid_qty: Decimal | None = None) -> None: ...

    assert takes_sizes(PaperSink(Exchange(SimConfig()))) and takes_sizes(Kwargs())
    assert not takes_sizes(PlainSink()) and not takes_sizes(OneSize()) and not takes_sizes(object())


# ------------------------------------------------------------------------------------------ against a venue
def test_polled_quantities_reach_the_paper_book_and_bound_its_fills(venue: Simulator) -> None:
    market = PublicMarket.fetch(venue.urls.rest, [SYM])
    start = venue_quote(venue)
    assert market.quotes[SYM] == start and start.ask_qty is not None and start.ask_qty > 0
    paper = paper_exchange(market)
    params = {"symbol": SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "59900"}
    buy = paper.place_order(paper.accounts["main"], params, NOW).order
    sink = PaperSink(paper)
    feed = feed_for(venue, "rest", market)
    with feeding(feed, sink):
        assert feed.wait_for(lambda s: s.updates >= 1, WAIT_S)
        assert sink.calls[0] == (SYM, start.bid, start.ask, start.bid_qty, start.ask_qty)  # the start-up snapshot
        venue.control.set_price(SYM, "59850")  # the venue's ask goes through the paper buy
        crossed = venue_quote(venue)
        assert feed.wait_for(lambda s: s.quotes.get(SYM) == crossed, WAIT_S)
        assert crossed.ask_qty is not None and crossed.ask_qty < 1
        assert buy.executed_qty == crossed.ask_qty and buy.status == "PARTIALLY_FILLED"  # not the whole 1 BTC
        updates = feed.status().updates
        # Someone takes 0.1 of the venue's ask: same prices, a smaller quantity. The paper book is told.
        venue.control.place_external_order(symbol=SYM, side="BUY", type="MARKET", quantity="0.1")
        shrunk = venue_quote(venue)
        assert shrunk.prices == crossed.prices and shrunk.ask_qty == crossed.ask_qty - D("0.1")
        assert feed.wait_for(lambda s: s.quotes.get(SYM) == shrunk, WAIT_S)
        assert feed.status().updates == updates + 1
        assert sink.calls[-1] == (SYM, shrunk.bid, shrunk.ask, shrunk.bid_qty, shrunk.ask_qty)
        assert buy.executed_qty == crossed.ask_qty  # a smaller size at the same price offers nothing new


def test_a_prices_only_sink_gets_price_changes_only(venue: Simulator) -> None:
    market = PublicMarket.fetch(venue.urls.rest, [SYM])
    sink = PlainSink()
    feed = feed_for(venue, "rest", market)
    with feeding(feed, sink):
        assert feed.wait_for(lambda s: s.updates >= 1, WAIT_S)
        start = venue_quote(venue)
        assert sink.calls == [(SYM, start.bid, start.ask)]
        venue.control.place_external_order(symbol=SYM, side="BUY", type="MARKET", quantity="0.1")  # size only
        log = venue.core.request_log
        assert log is not None
        polls = len(log)  # only the feed's polls reach the venue now
        # Re-checked at every poll's end: once the venue has received poll +2, poll +1 (which saw the new size) is done.
        assert feed.wait_for(lambda _: len(log) >= polls + 2, WAIT_S)
        venue.control.set_price(SYM, "59850")
        moved = venue_quote(venue)
        assert feed.wait_for(lambda s: s.quotes.get(SYM) is not None and s.quotes[SYM].prices == moved.prices, WAIT_S)
    assert sink.calls == [(SYM, start.bid, start.ask), (SYM, moved.bid, moved.ask)]


def test_stream_frames_carry_the_quantities(venue: Simulator) -> None:
    market = PublicMarket.fetch(venue.urls.rest, [SYM])
    sink = PaperSink(paper_exchange(market))
    feed = feed_for(venue, "ws", market)
    with feeding(feed, sink):
        assert feed.wait_for(lambda s: s.connected, WAIT_S)
        venue.control.set_price(SYM, "60500")
        moved = venue_quote(venue)
        assert feed.wait_for(lambda s: s.quotes.get(SYM) == moved, WAIT_S)
        assert sink.calls[-1] == (SYM, moved.bid, moved.ask, moved.bid_qty, moved.ask_qty)
        bt = sink.paper.book_ticker(SYM)
        assert (D(str(bt["a"])), D(str(bt["A"]))) == (moved.ask, moved.ask_qty)  # the venue's own size on top
