"""A halted pair's tracking-only book and the open-orders scan (reconciliation's answer since the scan-first change),
found in review: restored orders waiting for the start's scan must still get the exchange's word when the pair's
actor dies before the scan reaches it, when the scan reaches the dead actor's inbox, and when a scan row is odd."""

from __future__ import annotations

import queue
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from pykka.messages import ProxyCall

from engine.domain import Order, RequestRecord
from engine.gateway import GatewayRequest, GatewayResult, Op
from tests.actors.test_tracking_only import BTC, _Root
from tests.pair._book_helpers import T0, Harness, order_json, request


def _restored(n: int) -> tuple[Harness, list[GatewayRequest]]:
    first = Harness(conflict_policy="parallel")
    for i in range(n):
        first.place(request(key=f"k{i}", price=str(59000 - i), limit_timeout_s=Decimal(600)))
        first.answer(order_json(first.sent[-1], "NEW"))
    creates = list(first.sent)
    records = [r for r in first.stored if isinstance(r, RequestRecord)]
    orders = {o.client_order_id: o for o in first.stored if isinstance(o, Order)}
    second = Harness(conflict_policy="parallel")
    second.now = T0 + 1_000
    assert second.book.restore(records, list(orders.values()), {}, second.now) == n
    second.run(second.book.resume(second.now))  # the pair actor's start: they wait for the start's scan
    assert not any(r.op is Op.FETCH_ORDER for r in second.sent)
    return second, creates


def _scan(rows: list[Any]) -> GatewayResult:
    return GatewayResult(GatewayRequest(Op.OPEN_ORDERS, {"symbol": "BTCUSDT"}), data=rows)


def _halt(h: Harness, parked: list[ProxyCall]) -> _Root:
    """The pair actor dies with `parked` tells in its inbox, past the restart budget: the root takes its book."""
    from actors._pair_home import _Home

    home = _Home.of(h.book)
    dead: Any = object()
    home._actor = dead
    inbox: Any = queue.Queue()
    for message in parked:
        inbox.put(SimpleNamespace(message=message, reply_to=None))
    home.detach(dead, inbox)
    root = _Root()
    root._books = {BTC: h.book}
    root._outside, root._held, root._held_overflow = {}, {}, set()
    root._track_only(BTC)
    return root


def _looked_up(root: _Root) -> set[str]:
    return {r.key for r in root.calls.sent if r.op is Op.FETCH_ORDER}


def _resync_armed(root: _Root) -> set[str]:
    """The orders whose lookup the root's timers will send (`tracked:<pair>:resync:<cid>`)."""
    return {key.split(":resync:")[1] for key in root._timers if ":resync:" in key}


def test_a_scan_left_in_the_dead_actors_inbox_answers_for_the_restored_orders() -> None:
    h, creates = _restored(2)
    listed = order_json(creates[0], "PARTIALLY_FILLED", "0.001")  # filled a little while the engine was down
    root = _halt(h, [ProxyCall(attr_path=("on_open_orders",), args=(_scan([listed]),), kwargs={})])
    first = h.book.leg(creates[0].key)
    assert first is not None and first.resync_left == 0  # the scan's row was its word
    assert creates[1].key in _looked_up(root)  # the other one, not listed, is looked up


def test_a_pair_halted_before_any_scan_reached_it_looks_its_restored_orders_up() -> None:
    h, creates = _restored(2)
    root = _halt(h, [])  # the start's scan reached the actor after it died: dropped; no round follows a halt
    assert _looked_up(root) | _resync_armed(root) == {c.key for c in creates}


def test_an_odd_row_of_an_unknown_order_does_not_stop_a_halted_pairs_round() -> None:
    h, creates = _restored(2)
    root = _halt(h, [])
    root.calls.sent.clear()
    root._symbol_pairs = {"BTCUSDT": BTC}
    odd = order_json(creates[0], "NEW") | {"clientOrderId": "web_external_1", "orderId": 999999, "fills": 5}
    root.on_open_orders(BTC, _scan([odd, order_json(creates[0], "NEW")]))  # a periodic round's scan of the pair
    leg = h.book.leg(creates[0].key)
    assert leg is not None and leg.resync_left == 0  # the row after the odd one was applied: no TypeError out
