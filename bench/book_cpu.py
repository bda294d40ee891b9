"""Micro-benchmark: the CPU cost of the pure pair book on the hot path, one operation at a time.

Run: ``.venv/bin/python bench/book_cpu.py [--n 3000] [--warmup 300] [--wall] [--profile]``.

A `PairBook` is driven directly (no actors, no threads, no I/O), the way `tests/pair` drive it. Each round
places two limit BUY requests one after the other and times, in microseconds:

- ``place``: `PairBook.place` of a new limit request (intake, plan start, write-ahead and the create);
- ``ack_new``: `on_result` of the create's answer with status NEW (the caller's answer, the plan's timer);
- ``report_partial``: `on_report` of an execution report with a partial fill;
- ``report_final``: `on_report` of the report with the final fill (the request closes: trade, DONE event);
- ``ack_filled``: `on_result` of a create answered FILLED with its fills (the second request of the round).

Inputs (gateway results, parsed execution reports) are built outside the timed region; only the book's own
work is timed, with `forget_finished` after a DONE as the pair actor does. Logging is set up as the engine
does at INFO, into a sink that drops the lines, so the "request done" line is formatted as in production.
The clock is this thread's CPU time by default (``--wall``: elapsed time; a busy machine adds its waits).
Prints p50 / p90 / mean per operation and the sum of the p50s ("order" = place + ack_new + partial + final;
"total" adds ack_filled).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import pstats
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from engine.api import EventKind
from engine.domain import OrderRequest, Pair, RequestId, Side
from engine.exchange import parse_user_data
from engine.execution import ExecutionConfig, SlippageAction, SymbolRules
from engine.gateway import GatewayRequest, GatewayResult
from engine.logs import setup_logging
from engine.pair import Emit, IntakeContext, PairBook, PairSettings, WriteAhead

PAIR = Pair("BTC/USDT")
SYMBOL = "BTCUSDT"
T0 = 1_767_225_600_000
RULES = SymbolRules.from_exchange_info(
    {
        "symbol": SYMBOL,
        "status": "TRADING",
        "baseAsset": "BTC",
        "quoteAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
            {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": True, "maxNotional": "9000000",
             "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
    }
)  # fmt: skip
_clock = time.thread_time_ns
"""This thread's CPU time: other processes on a busy machine do not count (``--wall`` for elapsed time)."""
OPS = ("place", "ack_new", "report_partial", "report_final", "ack_filled")
_CTX = IntakeContext()


class Rig:
    """One book and the exchange's side of the conversation (ids, answers, reports)."""

    def __init__(self) -> None:
        config = ExecutionConfig(max_slippage=Decimal("0.005"), slippage_action=SlippageAction.CAP)
        self.book = PairBook(PAIR, RULES, PairSettings(execution=config))
        self.now = T0
        self.ids = itertools.count(1)
        self.order_ids = itertools.count(10_000)
        self.trade_ids = itertools.count(1_000_000)
        self.book.on_price(Decimal("59990"), Decimal("60010"), self.now)

    def request(self) -> OrderRequest:
        n = next(self.ids)
        return OrderRequest(
            request_id=RequestId(f"r{n}"),
            pair=PAIR,
            side=Side.BUY,
            amount=Decimal("0.01"),
            price=Decimal("60000"),
            idempotency_key=f"key-{n}",
            created_at=datetime.fromtimestamp(T0 / 1000, tz=UTC),
        )

    def ack(self, create: GatewayRequest, order_id: int, status: str, fills: list[tuple[str, int]]) -> GatewayResult:
        p = create.params
        executed = sum((Decimal(q) for q, _ in fills), Decimal(0))
        data = {
            "symbol": SYMBOL, "orderId": order_id, "orderListId": -1, "clientOrderId": p["newClientOrderId"],
            "transactTime": self.now, "price": p["price"], "origQty": p["quantity"], "executedQty": str(executed),
            "cummulativeQuoteQty": str(executed * 60000), "status": status, "timeInForce": p["timeInForce"],
            "type": p["type"], "side": p["side"],
            "fills": [{"price": "60000", "qty": q, "commission": "0.00000001", "commissionAsset": "BTC",
                       "tradeId": t} for q, t in fills],
        }  # fmt: skip
        return GatewayResult(create, data=data)

    def report(self, cid: str, order_id: int, status: str, last: str, cum: str) -> Any:
        trade_id = next(self.trade_ids)
        event = {
            "e": "executionReport", "E": self.now, "s": SYMBOL, "c": cid, "S": "BUY", "o": "LIMIT", "f": "GTC",
            "q": "0.01000000", "p": "60000.00000000", "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "",
            "x": "TRADE", "X": status, "r": "NONE", "i": order_id, "l": last, "z": cum, "L": "60000.00000000",
            "n": "0.00000001", "N": "BTC", "T": self.now, "t": trade_id, "I": 1, "w": status != "FILLED",
            "m": True, "M": True, "O": self.now, "Z": str(Decimal(cum) * 60000), "Y": str(Decimal(last) * 60000),
            "Q": "0.00000000", "W": self.now, "V": "EXPIRE_MAKER",
        }  # fmt: skip
        return parse_user_data(orjson.dumps({"subscriptionId": 1, "event": event}))


def _timed(samples: dict[str, list[float]], op: str, call: Callable[[], list[Any]], book: PairBook) -> list[Any]:
    """Time one book call, and (as the pair actor does after a DONE) `forget_finished` with it."""
    t0 = _clock()
    out = call()
    if any(isinstance(c, Emit) and c.event.kind is EventKind.DONE for c in out):
        book.forget_finished()
    samples[op].append((_clock() - t0) / 1000)
    return out


def _create_of(commands: list[Any]) -> GatewayRequest:
    return next(c.send for c in commands if isinstance(c, WriteAhead))


def round_(rig: Rig, samples: dict[str, list[float]]) -> None:
    """One round: a limit filled by two reports, then a limit answered FILLED."""
    book = rig.book
    # -- 1: place → NEW → partial fill → final fill
    rig.now += 10
    req = rig.request()
    create = _create_of(_timed(samples, "place", lambda: book.place(req, rig.now, _CTX), book))
    cid = create.params["newClientOrderId"]
    order_id = next(rig.order_ids)
    rig.now += 1
    result = rig.ack(create, order_id, "NEW", [])
    _timed(samples, "ack_new", lambda: book.on_result(result, rig.now), book)
    rig.now += 1
    partial = rig.report(cid, order_id, "PARTIALLY_FILLED", "0.00400000", "0.00400000")
    _timed(samples, "report_partial", lambda: book.on_report(partial, rig.now), book)
    rig.now += 1
    final = rig.report(cid, order_id, "FILLED", "0.00600000", "0.01000000")
    _timed(samples, "report_final", lambda: book.on_report(final, rig.now), book)
    # -- 2: place → FILLED at once (with its fills); the place is not counted twice
    rig.now += 10
    req2 = rig.request()
    create2 = _create_of(book.place(req2, rig.now, _CTX))  # timed once a round, above
    rig.now += 1
    filled = rig.ack(create2, next(rig.order_ids), "FILLED", [("0.01", next(rig.trade_ids))])
    _timed(samples, "ack_filled", lambda: book.on_result(filled, rig.now), book)
    if book.active():
        raise RuntimeError("a request did not finish: the benchmark no longer drives the book correctly")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="timed rounds (each: two requests)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--wall", action="store_true", help="time with perf_counter (elapsed), not CPU time")
    parser.add_argument("--profile", action="store_true", help="cProfile the timed rounds (times inflate)")
    args = parser.parse_args()
    global _clock
    _clock = time.perf_counter_ns if args.wall else time.thread_time_ns
    # The engine's own log set-up at INFO (the level it runs at), writing nowhere: lines are formatted, not shown.
    setup_logging(level="INFO", sink=lambda _message: None)
    rig = Rig()
    scratch: dict[str, list[float]] = {op: [] for op in OPS}
    for _ in range(args.warmup):
        round_(rig, scratch)
    samples: dict[str, list[float]] = {op: [] for op in OPS}
    profiler = cProfile.Profile() if args.profile else None
    gc.collect()
    wall = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for _ in range(args.n):
        round_(rig, samples)
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - wall
    clock = "elapsed (perf_counter)" if args.wall else "thread CPU time"
    print(f"rounds={args.n} (2 requests each), wall {wall:.2f} s, per-operation clock: {clock}")
    print(f"{'operation':<16}{'p50 µs':>10}{'p90 µs':>10}{'mean µs':>10}")
    for op in OPS:
        xs = sorted(samples[op])
        p90 = xs[int(len(xs) * 0.9)]
        print(f"{op:<16}{statistics.median(xs):>10.1f}{p90:>10.1f}{statistics.fmean(xs):>10.1f}")
    order = sum(statistics.median(samples[op]) for op in OPS[:4])
    print(f"{'order (p50 sum)':<16}{order:>10.1f}   place + ack_new + report_partial + report_final")
    print(f"{'total (p50 sum)':<16}{order + statistics.median(samples['ack_filled']):>10.1f}   all five")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)


if __name__ == "__main__":
    main()
