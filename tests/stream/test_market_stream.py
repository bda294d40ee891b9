"""bookTicker through the stream actor: latest price per symbol wins, and the stream survives a disconnect."""

from __future__ import annotations

import threading
from decimal import Decimal

from actors.stream import HealthState, LatestPrices, PriceUpdate
from engine.domain import Symbol
from tests.stream._helpers import Recorder, running_sim, stream_actor

NO_KEYS = {"api_key": "", "api_secret": ""}


class WatchedPrices(LatestPrices):
    """A price board that lets the test wait for offers and remembers the last one per symbol."""

    def __init__(self) -> None:
        super().__init__()
        self.cond = threading.Condition()
        self.last: dict[str, PriceUpdate] = {}

    def offer(self, update: PriceUpdate) -> bool:
        out = super().offer(update)
        with self.cond:
            self.last[update.symbol] = update
            self.cond.notify_all()
        return out


def test_a_burst_of_book_tickers_collapses_to_the_latest_per_symbol() -> None:
    prices = WatchedPrices()
    rec = Recorder()
    first = threading.Event()
    release = threading.Event()

    def slow_listener(symbol: Symbol, bid: Decimal, ask: Decimal, at_ms: int) -> None:
        rec.on_price(symbol, bid, ask, at_ms)
        if not first.is_set():
            first.set()
            release.wait(10)  # hold the actor: updates pile up on the board meanwhile

    symbols = ("BTCUSDT", "ETHUSDT")
    with (
        running_sim() as sim,
        stream_actor(sim, rec=rec, prices=prices, on_price=slow_listener, symbols=symbols, **NO_KEYS),
    ):
        assert first.wait(10)
        for i in range(1, 51):
            sim.control.set_price("BTCUSDT", str(60_000 + 10 * i))
            sim.control.set_price("ETHUSDT", str(3_000 + i))
        with prices.cond:
            assert prices.cond.wait_for(lambda: prices.offered >= 102, 10)  # 2 snapshots + 100 moves
        release.set()

        def settled(r: Recorder) -> bool:
            latest = {s: (b, a) for s, b, a, _ in r.prices}
            return all(latest.get(s) == (prices.last[s].bid, prices.last[s].ask) for s in symbols)

        rec.wait(settled, what="the latest price of both symbols")
        assert len(rec.prices) <= 4  # first snapshot(s), then one latest per symbol
        assert rec.errors == []


def test_market_stream_reconnects_after_a_disconnect() -> None:
    with running_sim() as sim, stream_actor(sim, symbols=("BTCUSDT",), **NO_KEYS) as run:
        run.rec.wait(lambda r: r.connected_count("market") == 1 and len(r.prices) >= 1, what="market connected")
        assert sim.control.close_ws("market") == 1
        run.rec.wait(lambda r: r.connected_count("market") == 2, what="market reconnected")
        assert run.rec.states("market")[-2:] == [HealthState.RECONNECTING, HealthState.CONNECTED]
        sim.control.set_price("BTCUSDT", "61000")
        run.rec.wait(lambda r: any(b < Decimal("61000") < a for _, b, a, _ in r.prices), what="new price")
        assert run.rec.gaps == []  # prices are snapshots: nothing to reconcile


def test_stopping_ends_every_ubwa_thread_even_on_a_quiet_market() -> None:
    # After ten frames UBWA receives market data without a timeout: only closing the socket ends its thread.
    with running_sim() as sim:
        with stream_actor(sim, symbols=("BTCUSDT",)) as run:
            run.rec.wait(lambda r: r.connected_count("market") == 1 and r.connected_count() == 1, what="streams up")
            for i in range(1, 16):
                sim.control.set_price("BTCUSDT", str(60_000 + 10 * i))
            run.rec.wait(lambda r: any(b < 60_150 < a for _, b, a, _ in r.prices), what="the last price")
            ids = [i for i in run.proxy.stream_ids().get(timeout=5).values() if i]
            assert len(ids) == 2
        threads = [t for t in threading.enumerate() if any(i in t.name for i in ids)]
        for t in threads:
            t.join(timeout=5)
        assert [t.name for t in threads if t.is_alive()] == []
