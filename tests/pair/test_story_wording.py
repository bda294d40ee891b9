"""The words a request's story and its end are told in: said once, and as people say them."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from loguru import logger

from engine.domain import FallbackKind, Order, RequestRecord, TradeStatus
from engine.gateway import Op
from tests.pair._book_helpers import T0, Harness, order_json, request


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), format="{message}", level="INFO")
    yield lines
    logger.remove(sink)


def test_a_request_resumed_past_its_limits_deadline_says_resumed_once() -> None:
    first = Harness()
    req = request(limit_timeout_s=Decimal(10))
    first.place(req)
    first.answer(order_json(first.sent[-1], "NEW"))
    [record] = [r for r in first.stored if isinstance(r, RequestRecord)]
    order = [o for o in first.stored if isinstance(o, Order)][-1]
    second = Harness()
    second.now = T0 + 20_000  # back after the limit's deadline: canceled now, the remainder goes as the fallback
    second.book.restore([record], [order], {}, second.now)
    second.run(second.book.resume(second.now))
    second.scan()  # the start's open-orders scan, which does not list it: looked up
    assert [r.op for r in second.sent] == [Op.CANCEL_ORDER, Op.FETCH_ORDER]
    second.answer(order_json(second.sent[0], "CANCELED", cancel=True), index=0)
    second.answer(order_json(second.sent[1], "CANCELED"), index=1)
    fallback = second.sent[-1]
    assert fallback.op is Op.CREATE_ORDER
    second.answer(order_json(fallback, "FILLED", "0.01", [("60010", "0.01")]))
    [trade] = second.trades()
    assert trade.status is TradeStatus.FILLED
    assert trade.note == "resumed after a restart; limit timeout; fallback market"


def test_a_request_that_ends_with_nothing_filled_is_logged_in_words(log_lines: list[str]) -> None:
    h = Harness(fallback=FallbackKind.NONE)
    req = request(amount="0.001")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    [trade] = h.trades()
    assert trade.status is TradeStatus.CANCELED
    [done] = [line for line in log_lines if line.startswith("request done:")]
    assert done.startswith("request done: canceled, nothing filled of 0.001 (limit timeout; fallback_none:")


def test_a_request_that_ends_partly_or_wholly_filled_is_logged_in_words(log_lines: list[str]) -> None:
    h = Harness(fallback=FallbackKind.NONE)
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "PARTIALLY_FILLED", "0.00400000", [("60000", "0.00400000")]))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", "0.00400000", cancel=True))
    h.place(other := request(amount="0.01"))
    h.answer(order_json(h.sent[-1], "FILLED", "0.01000000", [("60000", "0.01000000")]))
    assert other.request_id in {t.request_id for t in h.trades()}
    done = [line.split(" (")[0] for line in log_lines if line.startswith("request done:")]
    assert done == ["request done: partial, filled 0.004 of 0.01", "request done: filled 0.01 of 0.01"]


def test_the_request_done_line_names_every_order_of_the_request(log_lines: list[str]) -> None:
    # Found in a docs review: "grep a client order id for an order's whole story" missed the request's end.
    h = Harness()
    req = request(amount="0.01")
    h.place(req)
    primary = h.sent[-1]
    h.answer(order_json(primary, "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    fallback = h.sent[-1]
    h.answer(order_json(fallback, "FILLED", "0.01000000", [("60010", "0.01000000")]))
    [done] = [line for line in log_lines if line.startswith("request done:")]
    assert done.endswith(f"; orders: {primary.key}, {fallback.key}"), done
