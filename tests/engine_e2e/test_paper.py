"""Dry run on a real venue: the engine trades on a local paper exchange that follows the venue's public prices.

The "real venue" is a second simulator on loopback that logs every request; the configuration points the venue
URLs at it and carries a sentinel API key, so the tests can prove the venue only ever saw unsigned public GETs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.api import Accepted, Engine, EventKind
from engine.api._wiring import endpoint_for, make_paper_sim
from engine.clock import SystemClock
from engine.config import Config
from sim import FaultSpec, PublicMarket, PublicPriceFeed, SimConfig, Simulator
from tests.engine_e2e.test_engine_sim import Events
from tests.sim.test_price_source import VENUE_BTCUSDT, Logs

PAIR = "BTC/USDT"
SENTINEL_KEY = "SENTINELKEY" + "k" * 53
SENTINEL_SECRET = "SENTINELSECRET" + "s" * 50
WAIT_S = 20.0


@pytest.fixture
def venue() -> Iterator[Simulator]:
    config = SimConfig(
        seed=4,
        symbols=["BTCUSDT"],
        symbol_info={"BTCUSDT": VENUE_BTCUSDT},
        start_prices={"BTCUSDT": Decimal(60000)},
        record_requests=True,
    )
    with Simulator(config) as simulator:
        yield simulator


def _config(venue: Simulator, **stream: Any) -> Config:
    return Config.model_validate(
        {
            "exchange": {
                "name": "binance",
                "key": SENTINEL_KEY,
                "secret": SENTINEL_SECRET,
                "rest_url": venue.urls.rest,
                "ws_api_url": venue.urls.ws_api,
                "stream_url": venue.urls.stream,
                "pair_whitelist": [PAIR],
            },
            "execution": {"dry_run_wallet": {"USDT": "10000", "BTC": "0.5"}, "limit_timeout_s": "600"},
            "stream": {"ping_interval_s": "1", "ping_timeout_s": "1", "watchdog_silence_s": "3", **stream},
        }
    )


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., tuple[Engine, Events]]]:
    engines: list[Engine] = []

    def _start(config: Config, sim: Simulator | None = None) -> tuple[Engine, Events]:
        engine = Engine.start(
            config,
            clock=SystemClock(),
            sim=sim,
            database_url=f"sqlite:///{tmp_path}/paper.sqlite3",
            spool_path=tmp_path / "spool.jsonl",
        )
        engines.append(engine)
        events = Events()
        engine.subscribe(events)
        return engine, events

    yield _start
    for engine in engines:
        engine.stop(graceful=False)


@pytest.fixture
def logs() -> Iterator[Logs]:
    from loguru import logger

    captured = Logs()
    sink = logger.add(captured.write, level="INFO")
    yield captured
    logger.remove(sink)


def _assert_venue_saw_public_reads_only(venue: Simulator) -> None:
    seen = venue.control.requests()
    assert seen
    for req in seen:
        assert not req["api_key"] and not req["signed"], req  # no X-MBX-APIKEY header, no signature
        assert req["method"] == "GET", req
        assert req["path"] in ("/api/v3/exchangeInfo", "/api/v3/ticker/bookTicker", "/stream"), req
        assert SENTINEL_KEY not in f"{req['query']}{req['body']}", req
    assert venue.control.ledger()["orders"] == []


def test_dry_run_on_a_real_venue_fills_paper_orders_at_its_public_prices(
    venue: Simulator, start: Callable[..., tuple[Engine, Events]]
) -> None:
    engine, events = start(_config(venue))
    paper = engine.sim
    assert isinstance(paper, Simulator) and paper.urls.rest != venue.urls.rest
    # The engine's gateway and streams are pointed at the paper exchange, with its key, never the sentinel.
    endpoint = endpoint_for(engine.config, paper)
    assert endpoint.rest_base == paper.urls.rest and endpoint.api_key != SENTINEL_KEY
    assert paper.control.wait_subscriptions(1, within_s=WAIT_S), "the user data stream never subscribed"
    # The venue's exchangeInfo filters are what the paper exchange serves and enforces.
    served = PublicMarket.fetch(paper.urls.rest, ["BTCUSDT"]).symbol_info["BTCUSDT"]
    assert served["filters"] == VENUE_BTCUSDT["filters"]
    balances = paper.control.ledger()["balances"]
    assert Decimal(balances["USDT"]["free"]) == Decimal(10000)  # the dry-run wallet

    outcome = engine.place_order(PAIR, "buy", "0.01", "59900", idempotency_key="paper-1").result(timeout=WAIT_S)
    assert isinstance(outcome, Accepted), outcome
    venue.control.set_price("BTCUSDT", "59950")  # the venue's ask stays above the limit
    venue.control.set_price("BTCUSDT", "59850")  # …and now goes through it
    [done] = events.wait_for(EventKind.DONE, timeout=WAIT_S)
    assert done.trade is not None and done.trade.filled == Decimal("0.01")
    fills = [e.fill for e in events.of(EventKind.FILL) if e.fill]
    assert [(f.price, f.quantity, f.is_maker) for f in fills] == [(Decimal(59900), Decimal("0.01"), True)]
    [paper_order] = [o for o in paper.control.ledger()["orders"] if o["clientOrderId"].startswith("bx-")]
    assert paper_order["status"] == "FILLED"
    _assert_venue_saw_public_reads_only(venue)
    assert any(r["websocket"] for r in venue.control.requests())  # the default feed streams bookTicker


def test_a_silent_venue_freezes_the_paper_book_and_the_engine_keeps_running(
    venue: Simulator, start: Callable[..., tuple[Engine, Events]], logs: Logs
) -> None:
    config = _config(venue, max_reconnect_backoff_s="0.3")  # the feed retries at most every 0.3 s
    paper = make_paper_sim(config, transport="rest", poll_interval_s=0.05, stale_after_s=0.5, backoff_initial_s=0.05)
    feed = paper.price_feed
    assert isinstance(feed, PublicPriceFeed)
    paper.start()
    try:
        engine, events = start(config, sim=paper)
        assert paper.control.wait_subscriptions(1, within_s=WAIT_S)
        venue.control.add_fault(
            FaultSpec(kind="http_error", target="GET /api/v3/ticker/bookTicker", status=503, code=-1001, execute=False)
        )
        assert feed.wait_for(lambda s: not s.fresh, WAIT_S)
        assert logs.has("FROZEN")
        assert engine.health()["paper_feed"]["fresh"] is False  # operators see it in /health
        outcome = engine.place_order(PAIR, "buy", "0.01", "59900", idempotency_key="paper-2").result(timeout=WAIT_S)
        assert isinstance(outcome, Accepted), outcome  # the engine keeps trading on the frozen book
        venue.control.set_price("BTCUSDT", "59850")
        errors = feed.status().errors
        assert feed.wait_for(lambda s: s.errors >= errors + 3, WAIT_S)
        assert events.of(EventKind.FILL) == []  # frozen: the venue's move does not reach the paper book
        venue.control.clear_faults()
        [done] = events.wait_for(EventKind.DONE, timeout=WAIT_S)  # prices flow again: the order fills
        assert done.trade is not None and done.trade.filled == Decimal("0.01")
        assert logs.has("flow again")
        assert not engine.halted
    finally:
        paper.stop()
    _assert_venue_saw_public_reads_only(venue)


def test_an_unreachable_venue_is_a_clear_start_up_error(venue: Simulator) -> None:
    config = _config(venue)
    venue.stop()
    with pytest.raises(RuntimeError, match=r"public prices, which cannot be read.*exchange.name = 'sim'"):
        make_paper_sim(config)


def test_the_paper_feeds_retry_jitter_is_seeded_from_the_sim_seed(venue: Simulator) -> None:
    # Before: the feed kept its default seed whatever `sim.seed` said, so a paper run's retries did not replay.
    config = _config(venue).model_copy(update={"sim": _config(venue).sim.model_copy(update={"seed": 7})})
    paper = make_paper_sim(config, transport="rest")
    feed = paper.price_feed
    assert isinstance(feed, PublicPriceFeed)
    assert feed.seed == 7 == config.sim.seed


# ------------------------------------------------------------------------------------------ quote_size
def _thin_venue_btcusdt() -> dict[str, Any]:
    """The venue's BTCUSDT with a minimum notional of 1: its simulated best bid / ask show about 0.033 BTC."""
    filters = [
        f | {"minNotional": "1.00000000"} if f["filterType"] == "NOTIONAL" else f for f in VENUE_BTCUSDT["filters"]
    ]
    return VENUE_BTCUSDT | {"filters": filters}


def _venue_quote(venue: Simulator) -> tuple[Decimal, Decimal, Decimal]:
    bt = venue.core.exchange.book_ticker("BTCUSDT")
    return Decimal(str(bt["a"])), Decimal(str(bt["A"])), Decimal(str(bt["b"]))


def test_paper_fills_in_quote_size_mode_are_bounded_by_the_venues_visible_size(
    start: Callable[..., tuple[Engine, Events]],
) -> None:
    # Before (cross_fills = "full", the dry run's wiring): the 0.1 BTC paper buy filled completely the moment the
    # venue's ask reached it, with 0.033 BTC on show; the market order walked a synthetic book of ~0.23 BTC at the top.
    config = SimConfig(
        seed=4,
        symbols=["BTCUSDT"],
        symbol_info={"BTCUSDT": _thin_venue_btcusdt()},
        start_prices={"BTCUSDT": Decimal(60000)},
        record_requests=True,
    )
    with Simulator(config) as venue:
        app_config = _config(venue)
        wired = make_paper_sim(app_config)  # as the daemon builds it
        assert wired.config.cross_fills == "quote_size"
        paper = Simulator(wired.config, price_feed=wired.price_feed)
        feed = paper.price_feed
        assert isinstance(feed, PublicPriceFeed)

        def follow() -> tuple[Decimal, Decimal, Decimal]:
            ask, ask_qty, bid = _venue_quote(venue)
            assert feed.wait_for(
                lambda s: (
                    (q := s.quotes.get("BTCUSDT")) is not None and (q.ask, q.ask_qty, q.bid) == (ask, ask_qty, bid)
                ),
                WAIT_S,
            )
            return ask, ask_qty, bid

        paper.start()
        try:
            engine, events = start(app_config, sim=paper)
            assert paper.control.wait_subscriptions(1, within_s=WAIT_S)
            outcome = engine.place_order(PAIR, "buy", "0.1", "59900", idempotency_key="qs-1").result(timeout=WAIT_S)
            assert isinstance(outcome, Accepted), outcome
            shown: list[Decimal] = []
            for price in ("59850", "59840", "59830"):  # three new venue asks through the limit, ~0.033 BTC each
                venue.control.set_price("BTCUSDT", price)
                ask, ask_qty, _ = follow()
                assert ask < Decimal(59900) and ask_qty < Decimal("0.05")
                shown.append(ask_qty)
                events.wait_for(EventKind.FILL, count=len(shown), timeout=WAIT_S)
            [done] = events.wait_for(EventKind.DONE, timeout=WAIT_S)
            assert done.trade is not None and done.trade.filled == Decimal("0.1")
            fills = [(f.price, f.quantity, f.is_maker) for e in events.of(EventKind.FILL) if (f := e.fill)]
            last = Decimal("0.1") - shown[0] - shown[1]
            assert fills == [(Decimal(59900), q, True) for q in (shown[0], shown[1], last)]

            venue.control.set_price("BTCUSDT", "60000")  # a fresh ask: its whole size again
            ask, ask_qty, _ = follow()
            outcome = engine.place_order(PAIR, "buy", "0.05", order_type="market", idempotency_key="qs-2").result(
                timeout=WAIT_S
            )
            assert isinstance(outcome, Accepted), outcome
            events.wait_for(EventKind.DONE, count=2, timeout=WAIT_S)
            [market] = [o for o in paper.control.ledger()["orders"] if o["type"] == "MARKET"]
            taken = [
                (Decimal(t["price"]), Decimal(t["qty"]))
                for t in paper.control.ledger()["trades"]
                if t["orderId"] == market["orderId"]
            ]
            # The venue's size at its ask first, then the synthetic levels behind it.
            assert taken[0] == (ask, ask_qty) and all(p > ask for p, _ in taken[1:])
            assert sum(q for _, q in taken) == Decimal("0.05")
            paper_ask = Decimal(str(paper.core.exchange.book_ticker("BTCUSDT")["a"]))
            assert paper_ask > ask  # the venue's size is taken: the next taker does not get it again
        finally:
            paper.stop()
        _assert_venue_saw_public_reads_only(venue)
