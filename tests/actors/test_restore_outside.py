"""`restore_outside`: what start-up recovery does with stored orders of pairs outside the whitelist.

Over a `RecoveryState` as the database would give it and real `PairBook`s; nothing runs but the function.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from actors._recovery import NOT_WHITELISTED, restore_books, restore_outside
from db import RecoveryState
from engine.domain import ClientOrderId, Order, OrderRole, OrderStatus, OrderType, Pair, RequestId, Side
from engine.execution import SymbolRules
from engine.pair import PairBook, PairSettings

BTC, ETH, DOGE, XRP = Pair("BTC/USDT"), Pair("ETH/USDT"), Pair("DOGE/USDT"), Pair("XRP/USDT")
_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _order(pair: Pair, cid: str, role: OrderRole = OrderRole.PRIMARY) -> Order:
    return Order(
        client_order_id=ClientOrderId(cid), request_id=RequestId(f"r-{cid}"), pair=pair, side=Side.BUY,
        order_type=OrderType.LIMIT, role=role, status=OrderStatus.OPEN, price=Decimal(1), amount=Decimal(10),
        created_at=_NOW, updated_at=_NOW,
    )  # fmt: skip


def _state(*orders: Order) -> RecoveryState:
    return RecoveryState(orders=list(orders))


def _book(pair: Pair) -> PairBook:
    symbol = pair.replace("/", "")
    base, quote = pair.split("/")
    rules = SymbolRules.from_exchange_info({"symbol": symbol, "status": "TRADING", "baseAsset": base,
                                            "quoteAsset": quote, "filters": []})  # fmt: skip
    return PairBook(pair, rules, PairSettings())


def test_the_engines_own_orders_outside_the_whitelist_go_to_tracking_only_books() -> None:
    state = _state(
        _order(BTC, "btc-1"),  # whitelisted: its pair actor restores it, not this
        _order(ETH, "eth-1"),
        _order(ETH, "eth-ext", OrderRole.EXTERNAL),
        _order(DOGE, "doge-ext", OrderRole.EXTERNAL),  # only external orders: left alone, as before
    )
    books, untracked = restore_outside(state, [BTC], _book, 0)
    assert list(books) == [ETH] and untracked == []
    book, own = books[ETH]
    assert own == {"eth-1"}  # the only one the root will look up
    assert book.tracking_only and book.tracking_reason == NOT_WHITELISTED
    assert {leg.cid for leg in book.open_legs()} == {"eth-1", "eth-ext"}


def test_a_pair_that_cannot_be_restored_is_reported_and_the_others_still_are() -> None:
    def make(pair: Pair) -> PairBook | None:
        if pair == XRP:
            return None  # the exchange does not list it
        if pair == DOGE:
            raise ValueError("malformed filters")  # e.g. a delisted symbol's exchangeInfo
        return _book(pair)

    state = _state(_order(XRP, "x"), _order(DOGE, "d"), _order(ETH, "e"))
    books, untracked = restore_outside(state, [BTC], make, 0)
    assert list(books) == [ETH] and sorted(untracked) == [DOGE, XRP]


class _Asked:
    def __init__(self, value: object) -> None:
        self._value = value

    def get(self, timeout: float) -> object:
        return self._value


class _Store:
    """What `restore_books` asks of persistence: the used idempotency keys of a pair."""

    class proxy:  # stands in for the store's pykka proxy attribute
        @staticmethod
        def idempotency_keys(pair: str) -> _Asked:
            return _Asked([f"key-{pair}"])


def test_the_recovery_summary_counts_what_pairs_outside_the_whitelist_hold() -> None:
    # The summary line and /health said "0 unfinished request(s) resumed, 0 order(s) being reconciled" while the
    # engine tracked a request and an order of a pair removed from the whitelist (said only in another line).
    state = _state(_order(BTC, "btc-1"), _order(ETH, "eth-1"), _order(ETH, "eth-ext", OrderRole.EXTERNAL))
    summary = restore_books(_Store(), {BTC: _book(BTC)}, state, 0)
    assert (summary.orders, summary.outside_orders) == (1, 1)  # the external one is not the engine's
    assert summary.as_dict()["outside_whitelist_orders"] == 1
