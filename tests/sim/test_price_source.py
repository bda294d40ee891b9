"""External prices into the simulator's book: quotes, copied exchangeInfo filters and the public price feed.

The "real venue" is a second simulator on loopback that records every request it receives.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from loguru import logger

from sim import (
    Backoff,
    FaultSpec,
    FeedError,
    FeedStatus,
    PublicMarket,
    PublicPriceFeed,
    SimConfig,
    SimError,
    Simulator,
    SymbolSpec,
)
from tests.sim._helpers import NOW, exchange, order

WAIT_S = 10.0

# Binance's own BTCUSDT entry (2026), with filters the simulator does not model, and odd values that the
# simulator's synthetic BTCUSDT does not have (tick 0.1, min notional 7, asymmetric percent-price multipliers).
VENUE_BTCUSDT: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "status": "TRADING",
    "baseAsset": "BTC",
    "baseAssetPrecision": 8,
    "quoteAsset": "USDT",
    "quotePrecision": 8,
    "quoteAssetPrecision": 8,
    "baseCommissionPrecision": 8,
    "quoteCommissionPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
    "icebergAllowed": True,
    "ocoAllowed": True,
    "otoAllowed": True,
    "quoteOrderQtyMarketAllowed": True,
    "allowTrailingStop": True,
    "cancelReplaceAllowed": True,
    "amendAllowed": True,
    "isSpotTradingAllowed": True,
    "isMarginTradingAllowed": True,
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.10000000", "maxPrice": "1000000.00000000", "tickSize": "0.10"},
        {"filterType": "LOT_SIZE", "minQty": "0.00010000", "maxQty": "9000.00000000", "stepSize": "0.00010000"},
        {"filterType": "ICEBERG_PARTS", "limit": 100},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "85.5", "stepSize": "0.00000000"},
        {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000},
        {
            "filterType": "PERCENT_PRICE_BY_SIDE",
            "bidMultiplierUp": "5",
            "bidMultiplierDown": "0.2",
            "askMultiplierUp": "1.5",
            "askMultiplierDown": "0.5",
            "avgPriceMins": 5,
        },
        {
            "filterType": "NOTIONAL",
            "minNotional": "7.00000000",
            "applyMinToMarket": True,
            "maxNotional": "9000000.00000000",
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        {"filterType": "MAX_NUM_ORDER_LISTS", "maxNumOrderLists": 20},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        {"filterType": "MAX_NUM_ORDER_AMENDS", "maxNumOrderAmends": 10},
    ],
    "permissions": [],
    "permissionSets": [["SPOT", "MARGIN"]],
    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
    "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
}


def venue_config(**kw: Any) -> SimConfig:
    """The 'real' venue: BTCUSDT with the venue's own filters at 60,000, ETHUSDT synthetic; every request logged."""
    base: dict[str, Any] = {
        "seed": 3,
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "symbol_info": {"BTCUSDT": VENUE_BTCUSDT},
        "start_prices": {"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)},
        "record_requests": True,
    }
    return SimConfig(**(base | kw))


@pytest.fixture
def venue() -> Iterator[Simulator]:
    with Simulator(venue_config()) as simulator:
        yield simulator


class Logs:
    """Loguru records captured for the duration of a test."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, message: Any) -> None:
        self.lines.append(str(message.record["message"]))

    def has(self, fragment: str) -> bool:
        return any(fragment in line for line in self.lines)


@pytest.fixture
def logs() -> Iterator[Logs]:
    captured = Logs()
    sink = logger.add(captured.write, level="INFO")
    yield captured
    logger.remove(sink)


def paper_for(venue: Simulator, transport: str = "rest", **kw: Any) -> tuple[Simulator, PublicPriceFeed]:
    """A paper simulator following ``venue`` the way dry run builds it (filters copied, no random walk)."""
    market = PublicMarket.fetch(venue.urls.rest, ["BTCUSDT", "ETHUSDT"])
    opts: dict[str, Any] = {
        "poll_interval_s": 0.02,
        "stale_after_s": 5.0,
        "backoff_initial_s": 0.02,
        "backoff_max_s": 0.1,
        "request_timeout_s": 2.0,
    }
    feed = PublicPriceFeed(
        venue.urls.rest,
        ["BTCUSDT", "ETHUSDT"],
        stream_url=venue.urls.stream,
        transport=transport,  # type: ignore[arg-type]
        initial=market.quotes,
        **(opts | kw),
    )
    config = SimConfig(
        seed=9,
        symbols=["BTCUSDT", "ETHUSDT"],
        symbol_info={s: dict(i) for s, i in market.symbol_info.items()},
        start_prices={s: (q.bid + q.ask) / 2 for s, q in market.quotes.items()},
        cross_fills="full",
    )
    return Simulator(config, price_feed=feed), feed


def book(sim: Simulator, symbol: str = "BTCUSDT") -> tuple[Decimal, Decimal]:
    bt = sim.core.exchange.book_ticker(symbol)
    return Decimal(str(bt["b"])), Decimal(str(bt["a"]))


def following(feed: PublicPriceFeed, venue: Simulator, symbol: str = "BTCUSDT") -> bool:
    """Wait until the feed has pushed the venue's current best bid/ask of ``symbol``."""
    want = book(venue, symbol)

    def seen(s: FeedStatus) -> bool:
        q = s.quotes.get(symbol)
        return q is not None and (q.bid, q.ask) == want

    return feed.wait_for(seen, WAIT_S)


def assert_public_only(venue: Simulator) -> list[dict[str, Any]]:
    seen = venue.control.requests()
    assert seen, "the venue was never asked"
    for req in seen:
        assert not req["api_key"] and not req["signed"], req
        assert req["method"] == "GET" and req["path"] in (
            "/api/v3/exchangeInfo",
            "/api/v3/ticker/bookTicker",
            "/stream",
        ), req
    return seen


# ------------------------------------------------------------------------------------------ pure parts
def test_a_quote_sets_the_top_of_the_book_and_set_price_returns_to_the_synthetic_spread() -> None:
    ex = exchange(symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})
    ex.set_quote("BTCUSDT", Decimal("61000.013"), Decimal("61000.50"), NOW)
    m = ex.markets["BTCUSDT"]
    assert (m.best_bid, m.best_ask) == (Decimal("61000.01"), Decimal("61000.50"))
    assert m.mid == Decimal("61000.26")  # rounded to the tick
    ex.set_quote("BTCUSDT", Decimal(61000), Decimal(60999), NOW)  # a crossed quote keeps one tick of spread
    assert (m.best_bid, m.best_ask) == (Decimal(61000), Decimal("61000.01"))
    ex.set_price("BTCUSDT", Decimal(60000), NOW)
    assert m.quote is None and m.best_bid < Decimal(60000) < m.best_ask
    with pytest.raises(ValueError, match="positive"):
        ex.set_quote("BTCUSDT", Decimal(0), Decimal(1), NOW)


@pytest.mark.parametrize("cross_fills", ["tick_volume", "full"])
def test_a_quote_through_a_resting_limit_fills_it_at_its_price(cross_fills: str) -> None:
    ex = exchange(symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)}, seed=1, cross_fills=cross_fills)
    res = order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="1", price="59900")
    ex.set_quote("BTCUSDT", Decimal("59950"), Decimal("59950.01"), NOW)
    assert res.order.executed_qty == 0  # the ask is still above the limit
    ex.set_quote("BTCUSDT", Decimal("59890"), Decimal("59890.50"), NOW)
    trades = [t for t in ex.trades if t.order_id == res.order.order_id]
    assert {t.price for t in trades} == {Decimal(59900)} and all(t.is_maker for t in trades)
    # The default shares the tick's synthetic volume (a partial fill); paper trading fills what the quote crossed.
    if cross_fills == "full":
        assert res.order.executed_qty == Decimal(1) and res.order.status == "FILLED"
    else:
        assert 0 < res.order.executed_qty < Decimal(1) and res.order.status == "PARTIALLY_FILLED"


def test_filters_copied_from_the_venue_are_enforced_and_served_as_they_are() -> None:
    spec = SymbolSpec.from_exchange_info(VENUE_BTCUSDT, Decimal(60000))
    assert (spec.tick_size, spec.step_size, spec.min_notional, spec.market_max_qty) == (
        Decimal("0.1"),
        Decimal("0.0001"),
        Decimal(7),
        Decimal("85.5"),
    )
    ex = exchange(symbols=["BTCUSDT"], symbol_info={"BTCUSDT": VENUE_BTCUSDT}, start_prices={"BTCUSDT": Decimal(60000)})
    info = ex.specs["BTCUSDT"].exchange_info()
    assert info["filters"] == VENUE_BTCUSDT["filters"]
    assert info["orderTypes"] == ["LIMIT", "LIMIT_MAKER", "MARKET"]  # only what the paper engine can match
    assert info["permissionSets"] == [["SPOT", "MARGIN"]]

    def rejected(**p: str) -> str:
        with pytest.raises(SimError) as exc:
            order(ex, symbol="BTCUSDT", type="LIMIT", timeInForce="GTC", **p)
        return exc.value.msg

    assert rejected(side="BUY", quantity="0.001", price="59000.05") == "Filter failure: PRICE_FILTER"
    assert rejected(side="BUY", quantity="0.00015", price="59000") == "Filter failure: LOT_SIZE"
    assert rejected(side="BUY", quantity="0.0001", price="59000") == "Filter failure: NOTIONAL"  # 5.9 < 7
    assert rejected(side="SELL", quantity="0.001", price="95000") == "Filter failure: PERCENT_PRICE_BY_SIDE"
    order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price="95000")


def test_symbol_info_is_validated() -> None:
    with pytest.raises(ValueError, match="symbol_info for BTCUSDT"):
        SimConfig(symbols=["ETHUSDT"], symbol_info={"BTCUSDT": VENUE_BTCUSDT})
    bad = dict(VENUE_BTCUSDT, filters=[{"filterType": "LOT_SIZE", "stepSize": "x"}])
    with pytest.raises(ValueError, match=r"LOT_SIZE\.stepSize"):
        SimConfig(symbols=["BTCUSDT"], symbol_info={"BTCUSDT": bad})
    # A quote asset the synthetic specs do not know is fine when the venue describes the symbol.
    jpy = dict(VENUE_BTCUSDT, symbol="BTCJPY", quoteAsset="JPY")
    assert SimConfig(symbols=["BTCJPY"], symbol_info={"BTCJPY": jpy}).symbols == ["BTCJPY"]


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(1))
    delays = [backoff.next() for _ in range(6)]
    for delay, ceiling in zip(delays, [0.5, 1, 2, 4, 4, 4], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next() <= 0.5
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(0, 1)


def test_feed_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="stream_url"):
        PublicPriceFeed("http://127.0.0.1:1", ["BTCUSDT"], transport="ws")
    with pytest.raises(ValueError, match="shorter than stale_after_s"):
        PublicPriceFeed("http://127.0.0.1:1", ["BTCUSDT"], transport="rest", poll_interval_s=5, stale_after_s=5)
    with pytest.raises(ValueError, match="at least one symbol"):
        PublicPriceFeed("http://127.0.0.1:1", [], transport="rest")


# ------------------------------------------------------------------------------------------ over loopback
def test_the_start_up_snapshot_is_two_public_gets(venue: Simulator) -> None:
    market = PublicMarket.fetch(venue.urls.rest, ["btcusdt", "ETHUSDT"])
    assert market.symbol_info["BTCUSDT"]["filters"] == VENUE_BTCUSDT["filters"]
    assert (market.quotes["BTCUSDT"].bid, market.quotes["BTCUSDT"].ask) == book(venue)
    seen = assert_public_only(venue)
    assert [r["path"] for r in seen] == ["/api/v3/exchangeInfo", "/api/v3/ticker/bookTicker"]
    with pytest.raises(FeedError, match="Invalid symbol"):
        PublicMarket.fetch(venue.urls.rest, ["BTCUSDT", "DOGEUSDT"])
    with pytest.raises(FeedError, match="failed"):
        PublicMarket.fetch("http://127.0.0.1:9", ["BTCUSDT"], timeout_s=2)


def test_request_log_is_off_by_default() -> None:
    with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim:
        assert sim.core.request_log is None
        with pytest.raises(ValueError, match="record_requests"):
            sim.control.requests()


@pytest.mark.parametrize("transport", ["rest", "ws"])
def test_paper_fills_follow_the_venue_prices(venue: Simulator, transport: str) -> None:
    paper, feed = paper_for(venue, transport)
    with paper:
        assert book(paper) == book(venue)  # the start-up snapshot is in the book before anyone trades
        served = PublicMarket.fetch(paper.urls.rest, ["BTCUSDT"]).symbol_info["BTCUSDT"]
        assert served["filters"] == VENUE_BTCUSDT["filters"]  # the paper exchange answers with the venue's filters
        params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": "59900"}
        placed = paper.control.place_external_order(**params, quantity="0.5")
        assert placed["status"] == "NEW"
        venue.control.set_price("BTCUSDT", "59950")  # above the limit: nothing fills
        assert following(feed, venue)
        assert book(paper) == book(venue)
        assert paper.control.ledger()["trades"] == []
        venue.control.set_price("BTCUSDT", "59850")  # the venue's ask goes through 59,900
        assert following(feed, venue)
        trades = paper.control.ledger()["trades"]
        assert [(Decimal(t["price"]), Decimal(t["qty"]), t["isMaker"]) for t in trades] == [
            (Decimal(59900), Decimal("0.5"), True)
        ]
        btc = paper.control.ledger()["balances"]["BTC"]
        assert Decimal(btc["free"]) == Decimal("2") + Decimal("0.5") - Decimal("0.0005")  # minus the commission
        assert following(feed, venue, "ETHUSDT")
        venue.control.set_price("ETHUSDT", "3100")
        assert following(feed, venue, "ETHUSDT")
        assert book(paper, "ETHUSDT") == book(venue, "ETHUSDT")
    assert venue.control.ledger()["orders"] == []  # nothing was ever ordered on the venue
    seen = assert_public_only(venue)
    if transport == "ws":
        assert any(r["websocket"] and "btcusdt@bookTicker" in r["query"] for r in seen)


def test_the_stream_reconnects_with_backoff_and_catches_up(venue: Simulator, logs: Logs) -> None:
    paper, feed = paper_for(venue, "ws", stale_after_s=0.4)  # client pings every 0.2 s
    with paper:
        assert feed.wait_for(lambda s: s.connects >= 1 and s.connected, WAIT_S)
        before = feed.status().connects
        venue.control.abort_ws("market")  # the connection drops
        assert feed.wait_for(lambda s: s.connects > before and s.connected, WAIT_S)
        assert feed.status().errors >= 1 and logs.has("retrying in")
        venue.control.set_price("BTCUSDT", "61000")
        assert following(feed, venue)
        before = feed.status().connects
        venue.control.stall_ws("market")  # the connection stays open but answers nothing, pings included
        venue.control.set_price("BTCUSDT", "61500")
        assert feed.wait_for(lambda s: s.connects > before and s.connected, WAIT_S)
        assert following(feed, venue)
        assert book(paper) == book(venue)


def test_a_silent_venue_freezes_the_paper_book_and_says_so(venue: Simulator, logs: Logs) -> None:
    paper, feed = paper_for(venue, "rest", stale_after_s=0.3)
    with paper:
        assert following(feed, venue)
        fault = venue.control.add_fault(
            FaultSpec(kind="http_error", target="GET /api/v3/ticker/bookTicker", status=503, code=-1001, execute=False)
        )
        assert feed.wait_for(lambda s: not s.fresh, WAIT_S)
        assert logs.has("FROZEN") and logs.has("-1001")
        frozen = book(paper)
        venue.control.set_price("BTCUSDT", "58000")
        errors = feed.status().errors
        assert feed.wait_for(lambda s: s.errors >= errors + 3, WAIT_S)  # it keeps trying, and failing
        assert book(paper) == frozen != book(venue)
        venue.control.remove_fault(fault)
        assert feed.wait_for(lambda s: s.fresh, WAIT_S)
        assert following(feed, venue)
        assert book(paper) == book(venue) and logs.has("flow again")
