"""Routing the stream actor's output into the actor tree: reports and prices to their pair actors.

These run on UBWA's threads (reports) or the stream actor's (prices), so they only look up the current pair
actor and `tell` it — never block, never raise into UBWA. A pair actor found dead (it crashed and the root
has not restarted it yet, or it is past the restart budget) does not lose a report: the report goes to the
root instead, which holds it for the restarted actor or tracks it. A price for it is dropped (the next one
replaces it anyway).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal

import pykka
from loguru import logger

from engine.clock import Clock
from engine.domain import Pair
from engine.exchange import ExecutionReport
from engine.gateway import GatewayRequest, GatewayResult, Op

__all__ = ["STREAM_PRICE_STALE_MS", "PricePoll", "PriceRouter", "ReportRouter"]


class ReportRouter:
    """Execution reports go to their pair's actor; anything else (unknown pairs, account events, reports for
    a pair whose actor is dead) to `other`.

    After telling a pair actor, UBWA's thread sleeps `handoff_pause_s` (a few tens of µs). Without it, it goes
    straight on — its own bookkeeping, the next frame (Binance follows every fill with an
    outboundAccountPosition), parsing — while holding the interpreter lock, and the woken pair actor waits for
    all of that before it can apply the fill (≈ 250 µs measured, bench/fill_latency.py's breakdown). The sleep
    releases the lock while the pair actor is waking, so the fill is applied first; the frames behind it are
    read a little later, which costs nothing in a burst (the pair actors are the slower side then). Not a
    synchronisation: nothing depends on it, and 0 turns it off.
    """

    def __init__(
        self,
        routes: Callable[[Pair], object],
        symbol_pairs: Mapping[str, Pair],
        other: Callable[[object], None],
        *,
        handoff_pause_s: float = 0.0,  # float-ok: seconds
    ) -> None:
        self._routes = routes
        self._symbol_pairs = symbol_pairs
        self._other = other
        self._pause = handoff_pause_s

    def __call__(self, report: object) -> None:
        try:
            if isinstance(report, ExecutionReport):
                pair = self._symbol_pairs.get(report.symbol)
                proxy = self._routes(pair) if pair is not None else None
                if proxy is not None and self._told(proxy, report):
                    if self._pause:
                        time.sleep(self._pause)  # hand the interpreter to the pair actor (see the class doc)
                    return
            self._other(report)
        except Exception:  # noqa: BLE001 - this runs on UBWA's thread: an escape would kill the stream
            logger.exception("routing a user-data report failed")

    @staticmethod
    def _told(proxy: object, report: ExecutionReport) -> bool:
        try:
            proxy.on_report.defer(report)  # type: ignore[attr-defined]
        except pykka.ActorDeadError:
            return False
        return True


STREAM_PRICE_STALE_MS = 10_000
"""A pair the market stream has not priced for this long is polled over REST with the rest (`PriceRouter.stale`)."""


class PriceRouter:
    """The latest best bid/ask of a symbol goes to its pair's actor (the volatility trigger, slippage guard).

    It remembers when each symbol was last priced: a connected market stream does not mean every pair is fed (UBWA
    asks for all streams but one with a SUBSCRIBE frame, whose refusal nothing reports; bookTicker sends nothing until
    the book changes), and the pairs it leaves unpriced are polled (`stale`), not frozen at their last price.
    """

    def __init__(self, routes: Callable[[Pair], object], symbol_pairs: Mapping[str, Pair], clock: Clock) -> None:
        self._routes = routes
        self._symbol_pairs = symbol_pairs
        self._clock = clock
        self._since_ms = clock.now_ms()  # the market stream's last CONNECT (a symbol never priced counts from it)
        self._last_ms: dict[str, int] = {}  # written on UBWA's thread, read on the root's: one key, one store

    def connected(self) -> None:
        """The market stream (re)connected: it has `STREAM_PRICE_STALE_MS` from now to price each symbol."""
        self._since_ms = self._clock.now_ms()

    def stale(self) -> frozenset[Pair]:
        """The pairs the stream has not priced for `STREAM_PRICE_STALE_MS` (none since its CONNECT, or not lately)."""
        now, since = self._clock.now_ms(), self._since_ms
        return frozenset(
            pair for symbol, pair in self._symbol_pairs.items()
            if now - max(self._last_ms.get(symbol, since), since) > STREAM_PRICE_STALE_MS
        )  # fmt: skip

    def priced_since(self, pair: Pair, since_ms: int) -> bool:
        """Did the stream price `pair` at or after `since_ms`?"""
        symbol = next((s for s, p in self._symbol_pairs.items() if p == pair), None)
        return symbol is not None and self._last_ms.get(symbol, -1) >= since_ms

    def __call__(self, symbol: str, bid: Decimal, ask: Decimal, _received_ms: int) -> None:
        self._last_ms[symbol] = self._clock.now_ms()
        pair = self._symbol_pairs.get(symbol)
        proxy = self._routes(pair) if pair is not None else None
        if proxy is not None:
            # Restarting or halted: dropped, the next price after a restart brings the pair up to date.
            with contextlib.suppress(pykka.ActorDeadError):
                proxy.on_price.defer(bid, ask)  # type: ignore[attr-defined]


class PricePoll:
    """The root's price poll (every `price_poll_ms` while no market stream feeds bookTicker): all pairs in one call
    (weight 4). Called on the ticker's thread; answered on the gateway's.

    One poll at a time: while the gateway holds requests (a Retry-After block, an IP ban) a poll a second piled up
    (about 600 for a 10-minute ban), all sent at the ban's end ahead of the reconciliation the gap asked for — and
    spending the weight that had just been banned. A poll not answered yet makes the next tick skip.
    """

    def __init__(self, submit: Callable[[GatewayRequest], object], on_prices: Callable[[object, int], None],
                 needed: Callable[[], bool], now_ms: Callable[[], int]) -> None:  # fmt: skip
        self._submit, self._on_prices, self._needed, self._now_ms = submit, on_prices, needed, now_ms
        self._in_flight = threading.Event()
        self._sent_ms = 0

    def __call__(self) -> None:
        if self._in_flight.is_set() or not self._needed():
            return
        self._in_flight.set()
        self._sent_ms = self._now_ms()
        self._submit(GatewayRequest(Op.BOOK_TICKER, {}, key="prices", weight=4, reply_to=self._answered))

    def _answered(self, result: GatewayResult) -> None:
        sent_ms = self._sent_ms
        self._in_flight.clear()
        self._on_prices(result.data, sent_ms)  # what the stream priced after it left is newer than this answer
