"""Prices are polled over REST whenever no market stream feeds bookTicker: none configured, or the stream is down.

A frozen book would let the slippage guard and the risk valuation pass on prices minutes old. The ticker runs
on a manual clock: each `advance` fires the poll timer in this thread, so the submissions are counted exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.gateway import GatewayHandle
from actors.stream._decisions import HealthState, StreamHealth, StreamRole
from engine.gateway import GatewayRequest, Op
from sim import SimConfig, Simulator
from tests.engine_e2e._stack import engine_on

CONFIG = {"stream": {"user_data": False, "market_data": False}, "exchange": {"pair_whitelist": ["BTC/USDT"]}}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=1, symbols=["BTCUSDT"], start_prices={"BTCUSDT": Decimal(60000)})) as simulator:
        yield simulator


def _health(state: HealthState) -> StreamHealth:
    return StreamHealth(StreamRole.MARKET, state, "test", 0, 0)


def test_prices_are_polled_while_the_market_stream_is_not_connected(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls: list[GatewayRequest] = []
    original = GatewayHandle.submit

    def submit(self: GatewayHandle, request: GatewayRequest) -> Any:
        if request.op is Op.BOOK_TICKER and request.key == "prices":  # the poll (not the start-up read)
            polls.append(request)
        return original(self, request)

    monkeypatch.setattr(GatewayHandle, "submit", submit)
    with engine_on(sim, tmp_path, CONFIG) as (engine, _):
        root = engine._root.proxy()
        gateway = root.gateway.get(timeout=10)

        def seconds(n: int) -> None:  # one tick a second, each poll answered before the next (one at a time)
            for _ in range(n):
                engine.ticker.advance(1_000)
                assert gateway.idle(10)

        seconds(3)
        assert len(polls) == 3  # no market stream: polled every second
        root.on_stream_health(_health(HealthState.CONNECTED)).get(timeout=10)
        seconds(5)
        assert len(polls) == 3  # bookTicker streams in: no polling
        root.on_stream_health(_health(HealthState.RECONNECTING)).get(timeout=10)
        seconds(2)
        assert len(polls) == 5  # the stream is down: polled again


def test_one_price_poll_at_a_time_while_the_gateway_holds_them() -> None:
    # During an IP ban the gateway holds every request: a poll a second piled up (about 600 for a 10-minute ban), all
    # sent at the ban's end, ahead of the reconciliation the stream's gap asked for.
    from actors._feeds import PricePoll
    from engine.gateway import GatewayResult, Op

    sent: list[Any] = []
    prices: list[Any] = []
    needed = [True]
    poll = PricePoll(sent.append, lambda data, _sent_ms: prices.append(data), lambda: needed[0], lambda: 0)
    for _ in range(600):  # ten minutes of ticks while the first poll is held
        poll()
    assert [r.op for r in sent] == [Op.BOOK_TICKER]
    sent[0].reply_to(GatewayResult(sent[0], data=[{"symbol": "BTCUSDT"}]))
    assert prices == [[{"symbol": "BTCUSDT"}]]
    poll()  # answered: the next tick polls again
    assert len(sent) == 2
    sent[1].reply_to(GatewayResult(sent[1], error=RuntimeError("418")))  # a failed poll frees the next one too
    needed[0] = False
    poll()  # the market stream feeds prices again: no poll
    assert len(sent) == 2
    needed[0] = True
    poll()
    assert len(sent) == 3


def test_a_pair_a_connected_market_stream_does_not_price_is_polled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # UBWA asks for every stream but one with a SUBSCRIBE frame; its refusal is reported by nothing, the stream is
    # CONNECTED, polling stopped: the other pair kept its last price for good (found by a stream-fidelity review).
    from sim import FaultSpec

    polls = _count_polls(monkeypatch)
    prices = {"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
    config = {"stream": {"user_data": False, "market_data": True},
              "exchange": {"pair_whitelist": ["BTC/USDT", "ETH/USDT"]}}  # fmt: skip
    with Simulator(SimConfig(seed=1, symbols=list(prices), start_prices=prices)) as sim:
        sim.control.add_fault(FaultSpec(kind="reject_subscribe", target="market", count=1))
        with engine_on(sim, tmp_path, config) as (engine, _):
            gateway = engine._root.proxy().gateway.get(timeout=10)
            _market_connected(engine)
            before = len(polls)
            for _ in range(12):  # past STREAM_PRICE_STALE_MS: the unfed pair is polled, the stream still connected
                engine.ticker.advance(1_000)
                assert gateway.idle(10)
            _market_connected(engine)  # still connected, and polled
            assert len(polls) > before, (len(polls), before)


def test_the_price_router_tells_which_pairs_the_stream_left_unpriced() -> None:
    from actors._feeds import STREAM_PRICE_STALE_MS, PriceRouter
    from engine.clock import ManualClock
    from engine.domain import Pair

    clock = ManualClock(1_000_000)
    btc, eth = Pair("BTC/USDT"), Pair("ETH/USDT")
    router = PriceRouter(lambda _pair: None, {"BTCUSDT": btc, "ETHUSDT": eth}, clock)
    assert router.stale() == frozenset()  # just connected: nobody is late yet
    clock.advance(STREAM_PRICE_STALE_MS)
    router("ETHUSDT", Decimal(1), Decimal(2), 0)
    clock.advance(1)
    assert router.stale() == {btc}  # never priced since the connect
    clock.advance(STREAM_PRICE_STALE_MS)
    assert router.stale() == {btc, eth}  # a quiet ETH too, after a while
    router.connected()
    assert router.stale() == frozenset()  # a reconnect starts the count again


def _count_polls(monkeypatch: pytest.MonkeyPatch) -> list[GatewayRequest]:
    polls: list[GatewayRequest] = []
    original = GatewayHandle.submit

    def submit(self: GatewayHandle, request: GatewayRequest) -> Any:
        if request.op is Op.BOOK_TICKER and request.key == "prices":
            polls.append(request)
        return original(self, request)

    monkeypatch.setattr(GatewayHandle, "submit", submit)
    return polls


def _market_connected(engine: Any) -> None:
    def connected() -> bool:
        return (engine.health()["streams"] or {}).get("market", {}).get("state") == "connected"

    for _ in range(10_000):  # each round is an ask through the root's inbox (health is told there)
        if connected():
            return
    raise AssertionError(engine.health()["streams"])


@pytest.mark.parametrize(("whitelist", "most"), [(["BTC/USDT"], 0), (["BTC/USDT", "ETH/USDT"], 3)])
def test_polls_for_unpriced_pairs_are_only_for_the_whitelist_and_once_per_stale_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, whitelist: list[str], most: int
) -> None:
    # Found by a review: every symbol the exchange lists read as unfed (polls every second for good, the stream
    # pricing every whitelisted pair); and one resting whitelisted book kept an all-symbol poll a second going.
    polls = _count_polls(monkeypatch)
    prices = {"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}  # the exchange lists ETHUSDT either way
    config = {"stream": {"user_data": False, "market_data": True}, "exchange": {"pair_whitelist": whitelist}}
    sim_config = SimConfig(seed=1, symbols=list(prices), start_prices=prices, volatility=0)
    with Simulator(sim_config) as sim, engine_on(sim, tmp_path, config) as (engine, _):
        gateway = engine._root.proxy().gateway.get(timeout=10)
        _market_connected(engine)
        router = engine._root._actor_weakref()._price_router
        before = len(polls)
        for _ in range(30):  # BTC priced by the stream every second; ETH's book rests
            router("BTCUSDT", Decimal(60000), Decimal(60001), 0)
            engine.ticker.advance(1_000)
            assert gateway.idle(10)
        assert len(polls) - before <= most, len(polls) - before  # 30 a second before


def test_a_poll_answer_older_than_a_streamed_price_leaves_it(tmp_path: Path) -> None:
    # Found by a review: a poll taken before the stream priced the pair (the stream coming back from quiet), answered
    # after, put the book's old price back.
    from engine.domain import Pair

    prices = {"BTCUSDT": Decimal(60000)}
    config = {"stream": {"user_data": False, "market_data": True}, "exchange": {"pair_whitelist": ["BTC/USDT"]}}
    sim_config = SimConfig(seed=1, symbols=list(prices), start_prices=prices, volatility=0)
    with Simulator(sim_config) as sim, engine_on(sim, tmp_path, config) as (engine, _):
        root = engine._root._actor_weakref()
        sent_ms = engine.ticker.clock.now_ms()  # the poll leaves
        engine.ticker.advance(1)
        root._price_router("BTCUSDT", Decimal(61000), Decimal(61001), 0)  # the stream prices the moved book
        old = [{"symbol": "BTCUSDT", "bidPrice": "60000", "bidQty": "1", "askPrice": "60001", "askQty": "1"}]
        engine._root.proxy().on_prices(old, sent_ms).get(timeout=10)  # the poll's answer
        engine.open_orders("BTC/USDT")  # barrier: the pair actor handled what was told before
        assert root._books[Pair("BTC/USDT")].book.bid == Decimal(61000)
