"""Crash recovery at start and the open-orders scan of reconciliation, for the root actor.

At start, before any pair actor runs: the books get the current prices (one bookTicker call, so a resumed
plan's slippage guard and the first market order have a reference), the idempotency keys used before (so a
replayed key finds its order), and the unfinished requests and live orders from the database. The start's
open-orders scan then answers for the restored live orders it lists; each book looks up the others by client order
id (`PairBook.resume`, `PairBook.on_open_orders`).

The open-orders scan (one `openOrders` call per pair, or one for every symbol) is reconciliation's answer for the
live orders it lists, and finds what the stream may have missed: orders placed outside the engine, and engine
orders the database does not know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from loguru import logger

from db import RecoveryState
from engine.domain import OrderRole, Pair, Priority, pair_to_symbol
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.pair import PairBook, PairSettings

__all__ = [
    "NOT_WHITELISTED",
    "RecoverySummary",
    "best_quotes",
    "load_state",
    "open_order_scans",
    "prime_prices",
    "restore_books",
    "restore_outside",
    "split_by_pair",
]

_ASK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RecoverySummary:
    """What crash recovery found in the database."""

    requests: int
    orders: int
    keys: int
    outside_requests: int = 0
    """Unfinished requests of pairs no longer whitelisted (tracked to their end by the root, never traded)."""
    outside_orders: int = 0
    """The engine's orders not known to be over on pairs no longer whitelisted (tracked the same way)."""

    def as_dict(self) -> dict[str, int]:
        """Plain data (health endpoint)."""
        return {"requests_resumed": self.requests, "orders_to_reconcile": self.orders, "idempotency_keys": self.keys,
                "outside_whitelist_requests": self.outside_requests,
                "outside_whitelist_orders": self.outside_orders}  # fmt: skip


def best_quotes(data: Any, pairs: Iterable[Pair]) -> dict[Pair, tuple[Decimal, Decimal]]:
    """The best bid and ask of each of `pairs` found in a bookTicker answer (a list of Binance objects)."""
    rows = {str(r.get("symbol")): r for r in data if isinstance(r, dict)} if isinstance(data, list) else {}
    quotes: dict[Pair, tuple[Decimal, Decimal]] = {}
    for pair in pairs:
        row = rows.get(pair_to_symbol(pair))
        if row is None:
            continue
        bid, ask = _price(row.get("bidPrice")), _price(row.get("askPrice"))
        if bid is None or ask is None:
            # A row that is not Binance's (null, a number, "NaN"): skipped, the book keeps its last price.
            logger.warning("bookTicker row of {} skipped: bid {!r} ask {!r}", pair, row.get("bidPrice"),
                           row.get("askPrice"))  # fmt: skip
            continue
        quotes[pair] = (bid, ask)
    return quotes


def _price(value: object) -> Decimal | None:
    """A bookTicker price: a decimal string, finite and not negative (0 is an empty side); else None."""
    if not isinstance(value, str):
        return None
    try:
        price = Decimal(value)
    except ArithmeticError:
        return None
    return price if price.is_finite() and price >= 0 else None


def prime_prices(data: Any, books: Mapping[Pair, PairBook], now_ms: int) -> int:
    """Give every book the best bid/ask from one bookTicker answer; returns how many books got a price."""
    quotes = best_quotes(data, books)
    for pair, (bid, ask) in quotes.items():
        books[pair].on_price(bid, ask, now_ms)
    return len(quotes)


def with_id_namespace(store: Any, settings: PairSettings) -> PairSettings:
    """`settings` with the database's client order id namespace and tag (`db.id_namespace`, `db.id_tag`; blocking
    asks: start-up only).

    Before any book exists: every client order id, and every replayed key's lookup, is made in it.
    """
    namespace: str = store.proxy.id_namespace().get(timeout=_ASK_TIMEOUT_S)
    tag: str = store.proxy.id_tag().get(timeout=_ASK_TIMEOUT_S)
    return replace(settings, execution=replace(settings.execution, id_namespace=namespace, id_tag=tag))


def load_state(store: Any) -> RecoveryState:
    """Everything unfinished in the database, of every pair (one blocking ask: start-up only). The whitelisted
    pairs' books take theirs (`restore_books`), the rest is for `restore_outside`."""
    state: RecoveryState = store.proxy.recovery(None).get(timeout=_ASK_TIMEOUT_S)
    return state


def restore_books(store: Any, books: Mapping[Pair, PairBook], state: RecoveryState, now_ms: int) -> RecoverySummary:
    """Load the recovery state into the books, and each pair's used idempotency keys (blocking asks: start-up
    only)."""
    keys = 0
    resumed = 0
    for pair, book in books.items():
        pair_keys = store.proxy.idempotency_keys(str(pair)).get(timeout=_ASK_TIMEOUT_S)
        book.remember_keys(pair_keys)
        keys += len(pair_keys)
        resumed += book.restore(state.requests, state.orders, state.fills, now_ms, trades=state.trades)
    orders = sum(1 for order in state.orders if Pair(str(order.pair)) in books)
    outside_requests = sum(1 for r in state.requests if Pair(str(r.request.pair)) not in books)
    outside_orders = sum(1 for o in state.orders if Pair(str(o.pair)) not in books
                         and o.role is not OrderRole.EXTERNAL and not o.status.is_terminal)  # fmt: skip
    summary = RecoverySummary(resumed, orders, keys, outside_requests, outside_orders)
    outside = (f"; {outside_requests} unfinished request(s) and {outside_orders} order(s) of pairs no longer "
               "whitelisted, tracked to their end" if outside_requests or outside_orders else "")  # fmt: skip
    log = logger.warning if summary.orders or outside else logger.info
    log(
        "crash recovery: {} unfinished request(s) resumed, {} order(s) to reconcile with the exchange, "
        "{} idempotency key(s) known{}",
        summary.requests,
        summary.orders,
        summary.keys,
        outside,
    )
    return summary


NOT_WHITELISTED = "the pair is not whitelisted"
"""The tracking reason of a book for a pair outside the whitelist (orders from before the whitelist changed, or
placed outside the engine)."""


def restore_outside(
    state: RecoveryState, whitelisted: Iterable[Pair], make_book: Callable[[Pair], PairBook | None], now_ms: int
) -> tuple[dict[Pair, tuple[PairBook, frozenset[str]]], list[Pair]]:
    """The engine's own unfinished requests and live orders on pairs outside the whitelist (it changed since they
    were placed), each pair's in a tracking-only book: recorded and looked up to their end, never traded (no
    fallback, no cancel, no re-send).

    Returns, per pair, its book and the client order ids of the engine's own orders restored into it (the only
    ones there the root looks up: external orders stay as they were, recorded from the stream); and the pairs
    that could not be tracked (the exchange does not list them, or their book could not take what was stored),
    for the caller to alert. A pair with only external orders stored is left alone, as before.
    """
    inside = set(whitelisted)
    engine_orders = [o for o in state.orders if o.role is not OrderRole.EXTERNAL]
    pairs = {Pair(str(o.pair)) for o in engine_orders} | {Pair(str(r.request.pair)) for r in state.requests}
    books: dict[Pair, tuple[PairBook, frozenset[str]]] = {}
    untracked: list[Pair] = []
    for pair in sorted(pairs - inside):
        try:
            book = make_book(pair)
            if book is None:
                untracked.append(pair)
                continue
            book.tracking_only = True
            book.tracking_reason = NOT_WHITELISTED
            resumed = book.restore(state.requests, state.orders, state.fills, now_ms, trades=state.trades)
        except Exception:  # noqa: BLE001 - one pair's stored rows must not stop the engine from starting
            logger.bind(pair=pair).exception("the stored orders of a pair outside the whitelist cannot be restored")
            untracked.append(pair)
            continue
        own = frozenset(o.client_order_id for o in engine_orders if o.pair == pair)
        logger.bind(pair=pair).warning(
            "crash recovery: {} unfinished request(s) and {} live order(s) of a pair no longer whitelisted; "
            "tracked to their end, never traded",
            resumed,
            len([leg for leg in book.open_legs() if leg.cid in own]),
        )
        books[pair] = (book, own)
    return books, untracked


_ALL_SYMBOLS_WEIGHT = 80
_PER_SYMBOL_WEIGHT = 6


def open_order_scans(
    pairs: Iterable[Pair], reply: Callable[[Pair | None], Callable[[GatewayResult], None]]
) -> list[GatewayRequest]:
    """The cheapest openOrders queries covering `pairs`: one per pair (weight 6 each) or, from 14 pairs on,
    one for every symbol (weight 80). An all-symbols answer is replied with pair None (split by symbol)."""
    pairs = list(pairs)
    if len(pairs) * _PER_SYMBOL_WEIGHT > _ALL_SYMBOLS_WEIGHT:
        return [GatewayRequest(Op.OPEN_ORDERS, {}, Priority.EXIT, key="open-orders", reply_to=reply(None),
                               weight=_ALL_SYMBOLS_WEIGHT)]  # fmt: skip
    return [
        GatewayRequest(
            Op.OPEN_ORDERS,
            {"symbol": pair_to_symbol(pair)},
            Priority.EXIT,
            key=f"open-orders:{pair}",
            pair=pair,
            reply_to=reply(pair),
            weight=_PER_SYMBOL_WEIGHT,
        )
        for pair in pairs
    ]


def split_by_pair(result: GatewayResult, symbol_pairs: Mapping[str, Pair]) -> dict[Pair, GatewayResult]:
    """An all-symbols openOrders answer as one answer per pair (pairs without open orders get an empty list)."""
    rows: dict[Pair, list[Any]] = {pair: [] for pair in symbol_pairs.values()}
    for row in result.data if isinstance(result.data, list) else ():
        pair = symbol_pairs.get(str(row.get("symbol"))) if isinstance(row, dict) else None
        if pair is not None:
            rows[pair].append(row)
    return {pair: replace(result, data=found) for pair, found in rows.items()}  # sent_ms kept: the scan filter
