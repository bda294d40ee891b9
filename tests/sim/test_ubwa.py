"""The real unicorn-binance-websocket-api manager against the simulator (user data and bookTicker)."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from unicorn_binance_websocket_api import BinanceWebSocketApiManager
from unicorn_fy import UnicornFy  # type: ignore[import-untyped]

from sim import Simulator
from tests.sim._helpers import make_ccxt, running

UNICORNFY_KEYS = tuple("eEscSofqpPFgCxXrilzLnNTtIwmMOZY")  # one-letter keys UnicornFy indexes with []


class Feed:
    """Collects UBWA frames and signals through thread-safe queues."""

    def __init__(self) -> None:
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.signals: queue.Queue[str] = queue.Queue()

    def on_data(self, data: str) -> None:
        self.frames.put(orjson.loads(data))

    def on_signal(self, signal_type: str, stream_id: str, data_record: Any = None, error_msg: Any = None) -> None:
        self.signals.put(signal_type)

    def next_event(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            frame = self.frames.get(timeout=timeout)
            event = frame.get("event", frame.get("data", frame))
            if isinstance(event, dict) and event.get("e", "bookTicker" if "b" in event else None) == kind:
                return frame

    def wait_signal(self, kind: str, timeout: float = 15.0) -> None:
        while self.signals.get(timeout=timeout) != kind:
            pass


@pytest.fixture
def ubwa() -> Iterator[tuple[Simulator, BinanceWebSocketApiManager, Feed]]:
    with running() as sim:
        feed = Feed()
        mgr = BinanceWebSocketApiManager(
            exchange="binance.com",
            websocket_api_base_uri=sim.urls.ws_api,
            websocket_base_uri=sim.urls.stream,
            warn_on_update=False,
            output_default="raw_data",
            process_stream_data=feed.on_data,
            process_stream_signals=feed.on_signal,
        )
        try:
            yield sim, mgr, feed
        finally:
            mgr.stop_manager()


def test_user_data_reports_and_reconnects(ubwa: tuple[Simulator, BinanceWebSocketApiManager, Feed]) -> None:
    sim, mgr, feed = ubwa
    acc = sim.accounts[0]
    mgr.create_stream(["arr"], ["!userData"], api_key=acc.api_key, api_secret=acc.secret)
    assert sim.control.wait_subscriptions(1)
    ex = make_ccxt(sim)
    ex.load_markets()
    ex.create_order("BTC/USDT", "limit", "buy", 0.01, 60000, {"clientOrderId": "ubwa-1"})
    frame = feed.next_event("executionReport")
    assert frame["subscriptionId"] == 0
    report = frame["event"]
    assert all(k in report for k in [*UNICORNFY_KEYS, "V", "W", "Q"])
    assert (report["c"], report["x"], report["X"], report["w"], report["N"]) == ("ubwa-1", "NEW", "NEW", True, None)
    unicorn = UnicornFy.binance_com_websocket(orjson.dumps(frame).decode())
    assert unicorn["event_type"] == "executionReport" and unicorn["client_order_id"] == "ubwa-1"
    pos = feed.next_event("outboundAccountPosition")["event"]
    assert {b["a"] for b in pos["B"]} == {"USDT"}
    sim.control.fill_order("BTCUSDT", client_order_id="ubwa-1", quantity="0.004")
    trade = feed.next_event("executionReport")["event"]
    assert (trade["x"], trade["X"], trade["l"], trade["z"], trade["m"]) == (
        "TRADE",
        "PARTIALLY_FILLED",
        "0.00400000",
        "0.00400000",
        True,
    )
    assert trade["t"] > 0 and trade["N"] == "BTC"

    for how in ("close", "abort"):
        if how == "close":
            assert sim.control.close_ws("user") == 1
        else:
            assert sim.control.abort_ws("user") == 1
        feed.wait_signal("DISCONNECT")
        feed.wait_signal("CONNECT")
        assert sim.control.wait_subscriptions(1)  # a fresh subscription after the reconnect
        ex.cancel_order(
            None, "BTC/USDT", {"clientOrderId": "ubwa-1"} if how == "close" else {"clientOrderId": "ubwa-2"}
        )
        cancel = feed.next_event("executionReport")["event"]
        assert cancel["x"] == "CANCELED" and cancel["C"] in ("ubwa-1", "ubwa-2")
        if how == "close":
            ex.create_order("BTC/USDT", "limit", "buy", 0.01, 60000, {"clientOrderId": "ubwa-2"})
            assert feed.next_event("executionReport")["event"]["c"] == "ubwa-2"
    kinds = [f["kind"] for f in sim.control.ledger()["faults"]]
    assert kinds == ["ws_close", "ws_abort"]


def test_book_ticker_stream(ubwa: tuple[Simulator, BinanceWebSocketApiManager, Feed]) -> None:
    sim, mgr, feed = ubwa
    mgr.create_stream(["bookTicker"], ["btcusdt"])
    first = feed.next_event("bookTicker")
    assert first["stream"] == "btcusdt@bookTicker"
    sim.control.set_price("BTCUSDT", "61000")
    while True:
        data = feed.next_event("bookTicker")["data"]
        if data["b"].startswith("6099"):
            break
    assert set(data) == {"u", "s", "b", "B", "a", "A"} and data["s"] == "BTCUSDT"


def test_binance_us_listen_key_stream_with_ubwa_and_ccxt() -> None:
    import ccxt

    from sim import SimConfig
    from tests.sim._helpers import point_ccxt

    with Simulator(SimConfig(exchange_mode="binanceus")) as sim:
        acc = sim.accounts[0]
        us = ccxt.binanceus({"apiKey": acc.api_key, "secret": acc.secret, "enableRateLimit": False})
        point_ccxt(us, sim.urls.rest)
        us.load_markets()  # binanceus defaults: only GET /api/v3/exchangeInfo
        listen_key = us.public_post_userdatastream()["listenKey"]
        feed = Feed()
        mgr = BinanceWebSocketApiManager(
            exchange="binance.us",
            websocket_base_uri=sim.urls.stream,
            warn_on_update=False,
            output_default="raw_data",
            process_stream_data=feed.on_data,
            process_stream_signals=feed.on_signal,
        )
        try:
            mgr.create_stream(["arr"], ["!userData"], listen_key=listen_key, keep_listen_key_alive=False)
            assert sim.control.wait_subscriptions(1)
            us.create_order("ETH/USDT", "limit", "sell", 0.1, 3600, {"clientOrderId": "us-1"})
            report = feed.next_event("executionReport")
            assert "subscriptionId" not in report and report["c"] == "us-1"  # unwrapped on Binance.US
        finally:
            mgr.stop_manager()
