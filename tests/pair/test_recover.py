"""The pair book's recovery half, pure: restored requests, late reports, external and adopted orders."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from engine.api import EventKind
from engine.domain import Fill, Order, OrderRole, OrderStatus, OrderType, RequestRecord, Side, Trade, TradeStatus
from engine.exchange import ExecutionReport, client_order_id, parse_user_data
from engine.gateway import GatewayResult, Op
from engine.pair import Alert, Command, IntakeContext, LookupStored, Persist, Send
from tests.pair._book_helpers import PAIR, T0, Harness, order_json, request


def _report(cid: str, *, x: str, status: str, last: str, cum: str, trade_id: int, order_id: int,
            qty: str = "0.01", price: str = "60000", fee: str = "0", otype: str = "LIMIT",
            fill_price: str = "") -> ExecutionReport:  # fmt: skip
    fill_price = fill_price or price
    frame = {
        "e": "executionReport", "E": T0 + 50, "s": "BTCUSDT", "c": cid, "S": "BUY", "o": otype, "f": "GTC",
        "q": qty, "p": price, "P": "0", "F": "0", "g": -1, "C": "", "x": x, "X": status, "r": "NONE",
        "i": order_id, "l": last, "z": cum, "L": fill_price, "n": fee, "N": "BNB", "T": T0 + 50,
        "t": trade_id if x == "TRADE" else -1, "I": 1, "w": status in ("NEW", "PARTIALLY_FILLED"), "m": True,
        "M": True, "O": T0, "Z": str(Decimal(cum) * Decimal(fill_price)), "Y": str(Decimal(last) * Decimal(fill_price)),
        "Q": "0", "W": T0, "V": "EXPIRE_MAKER",
    }  # fmt: skip
    report = parse_user_data(orjson.dumps(frame))
    assert isinstance(report, ExecutionReport)
    return report


def _of(commands: list[Command], kind: type) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def test_a_report_for_an_order_that_left_memory_is_looked_up_and_updates_the_trade() -> None:
    h = Harness()
    cid = client_order_id("left-memory", pair="BTC/USDT")
    when = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    # stored: the limit was canceled with 0.006 executed, but only 0.004 of fills could be fetched in time
    stored_order = Order(
        client_order_id=cid, exchange_order_id=77, request_id="r-left", pair=PAIR, side=Side.BUY,
        order_type=OrderType.LIMIT, status=OrderStatus.CANCELED, price=Decimal(60000), amount=Decimal("0.01"),
        filled=Decimal("0.004"), quote_filled=Decimal(240), created_at=when, updated_at=when,
    )  # fmt: skip
    stored_fills = [
        Fill(symbol="BTCUSDT", pair=PAIR, trade_id=1, client_order_id=cid, exchange_order_id=77, side=Side.BUY,
             price=Decimal(60000), quantity=Decimal("0.004"), quote_quantity=Decimal(240), commission=Decimal(0),
             commission_asset="BNB", is_maker=True, time=when)
    ]  # fmt: skip
    trade = Trade(
        request_id="r-left", pair=PAIR, side=Side.BUY, requested=Decimal("0.01"), filled=Decimal("0.004"),
        average_price=Decimal(60000), fees={"BNB": Decimal("0.5")}, status=TradeStatus.PARTIAL, created_at=when,
        closed_at=when, remainder=Decimal("0.006"), note="limit canceled",
    )  # fmt: skip
    late = _report(cid, x="TRADE", status="CANCELED", last="0.002", cum="0.006", trade_id=2, order_id=77, fee="0.01")
    [lookup] = _of(h.book.on_report(late, h.now), LookupStored)
    assert lookup.client_order_id == cid
    commands = h.book.on_stored(lookup.sighting, stored_order, stored_fills, trade, h.now)
    persisted = [c.item for c in _of(commands, Persist)]
    assert [f.trade_id for f in persisted if isinstance(f, Fill)] == [2]
    [updated] = [t for t in persisted if isinstance(t, Trade)]
    assert updated.filled == Decimal("0.006") and updated.remainder == Decimal("0.004") and "late fill" in updated.note
    # the trade's fees (the fallback's included) grow by this fill's commission, not to this leg's total
    assert updated.fees == {"BNB": Decimal("0.51")}
    assert [a.key for a in _of(commands, Alert)] == ["late_fill"]
    # the same report again changes nothing (dedupe by trade id)
    again = h.book.on_report(late, h.now)
    assert not [c for c in _of(again, Persist) if isinstance(c.item, Fill)] and not _of(again, LookupStored)


def test_an_order_placed_outside_the_engine_is_recorded_announced_and_tracked() -> None:
    h = Harness()
    commands = h.book.on_report(
        _report("web_abc", x="NEW", status="NEW", last="0", cum="0", trade_id=0, order_id=42, price="59000"), h.now
    )
    assert not _of(commands, LookupStored)
    orders = [c.item for c in _of(commands, Persist) if isinstance(c.item, Order)]
    assert orders and orders[-1].role is OrderRole.EXTERNAL and orders[-1].status is OrderStatus.OPEN
    assert [a.key for a in _of(commands, Alert)] == ["external_order"]
    [event] = [c.event for c in commands if hasattr(c, "event") and c.event.kind is EventKind.EXTERNAL]
    assert event.client_order_id == "web_abc"
    # its fill later is applied to it (tracked), not to any request
    fill = h.book.on_report(
        _report("web_abc", x="TRADE", status="FILLED", last="0.01", cum="0.01", trade_id=9, order_id=42), h.now
    )
    assert [c.item.trade_id for c in _of(fill, Persist) if isinstance(c.item, Fill)] == [9]
    assert not _of(fill, Alert)


def test_an_outside_market_order_for_a_quote_amount_is_tracked_although_its_quantity_is_reported_as_0() -> None:
    # A market order placed with quoteOrderQty ("buy 100 USDT of BTC") is reported NEW with q=0: its quantity is
    # what the quote amount buys. It crashed the pair actor ("amount must be > 0"), spending the restart budget.
    h = Harness()

    def report(**kw: Any) -> ExecutionReport:
        return _report("web_quote", qty="0", price="0", fill_price="60000", otype="MARKET", order_id=43, **kw)

    commands = h.book.on_report(report(x="NEW", status="NEW", last="0", cum="0", trade_id=0), h.now)
    assert [a.key for a in _of(commands, Alert)] == ["external_order"]
    # its fills follow (still q=0 here), and the quantity follows them: no "impossible amount" anomaly
    commands = h.book.on_report(report(x="TRADE", status="PARTIALLY_FILLED", last="0.004", cum="0.004",
                                       trade_id=10), h.now)  # fmt: skip
    commands += h.book.on_report(report(x="TRADE", status="FILLED", last="0.006", cum="0.01", trade_id=11), h.now)
    assert not _of(commands, Alert)
    persisted = [c.item for c in _of(commands, Persist)]
    assert [f.trade_id for f in persisted if isinstance(f, Fill)] == [10, 11]
    last = [o for o in persisted if isinstance(o, Order)][-1]
    assert last.role is OrderRole.EXTERNAL and last.status is OrderStatus.FILLED
    assert last.amount == last.filled == Decimal("0.01")


def test_an_engine_order_the_database_does_not_know_is_adopted() -> None:
    h = Harness()
    cid = client_order_id("never-stored", pair="BTC/USDT")
    [lookup] = _of(
        h.book.on_report(_report(cid, x="NEW", status="NEW", last="0", cum="0", trade_id=0, order_id=5), h.now),
        LookupStored,
    )
    commands = h.book.on_stored(lookup.sighting, None, [], None, h.now)
    assert [a.key for a in _of(commands, Alert)] == ["adopted_order"]
    assert h.book.leg(cid) is not None and h.book.leg(cid).role is OrderRole.PRIMARY  # type: ignore[union-attr]


def test_open_orders_scan_finds_strangers_and_skips_known_orders() -> None:
    h = Harness()
    req = request()
    h.place(req)
    create = h.sent[-1]
    h.answer(order_json(create, "NEW"))
    rows = [
        {**order_json(create, "NEW")},
        {"symbol": "BTCUSDT", "orderId": 99, "clientOrderId": "and_web_1", "price": "58000", "origQty": "0.5",
         "executedQty": "0", "cummulativeQuoteQty": "0", "status": "NEW", "timeInForce": "GTC", "type": "LIMIT",
         "side": "SELL", "time": T0, "updateTime": T0},
    ]  # fmt: skip
    result = GatewayResult(create.__class__(Op.OPEN_ORDERS, {"symbol": "BTCUSDT"}), data=rows)
    commands = h.book.on_open_orders(result, h.now)
    assert [a.key for a in _of(commands, Alert)] == ["external_order"]
    assert h.book.leg("and_web_1") is not None  # type: ignore[arg-type]


def test_restore_resumes_a_request_and_looks_its_order_up_when_the_actor_starts() -> None:
    first = Harness()
    req = request(limit_timeout_s=Decimal(10))
    first.place(req)
    create = first.sent[-1]
    first.answer(order_json(create, "NEW"))
    [record] = [r for r in first.stored if isinstance(r, RequestRecord)]
    order = [o for o in first.stored if isinstance(o, Order)][-1]

    second = Harness()
    assert second.book.restore([record], [order], {}, T0 + 4_000) == 1
    commands = second.book.resume(T0 + 4_000)
    assert not _of(commands, Send)  # a live order waits for the start's open-orders scan
    assert any(getattr(c, "due_ms", None) == T0 + 10_000 for c in commands)  # the remaining 6 s
    # The scan does not list it (filled or canceled while the engine was down): looked up by client order id.
    commands = second.book.on_open_orders(_scan([]), T0 + 4_000, reconcile=True)
    [fetch] = [c.request for c in _of(commands, Send)]
    assert fetch.op is Op.FETCH_ORDER and fetch.params["origClientOrderId"] == order.client_order_id
    # the same idempotency key is known: a replay does not start a second execution
    replay = second.book.place(request(key=req.idempotency_key), T0 + 4_001, IntakeContext())
    assert not _of(replay, Send)


def _scan(rows: list[Any]) -> GatewayResult:
    from engine.gateway import GatewayRequest

    return GatewayResult(GatewayRequest(Op.OPEN_ORDERS, {"symbol": "BTCUSDT"}), data=rows)


def test_the_start_scan_answers_for_the_restored_orders_it_lists_and_only_the_rest_are_looked_up() -> None:
    # Found at scale: 300 restored orders looked up one by one took 1,200 weight, the minute's budget; the wallet
    # read waited for the next minute and new orders were refused. A few scans answer for every order they list.
    first = Harness(conflict_policy="parallel")
    placed = []
    for n, price in enumerate(("59000", "58000")):
        req = request(key=f"k{n}", price=price, limit_timeout_s=Decimal(600))
        first.place(req)
        first.answer(order_json(first.sent[-1], "NEW"))
        placed.append(first.sent[-1])
    records = [r for r in first.stored if isinstance(r, RequestRecord)]
    orders = {o.client_order_id: o for o in first.stored if isinstance(o, Order)}
    second = Harness(conflict_policy="parallel")
    assert second.book.restore(records, list(orders.values()), {}, T0 + 1_000) == 2
    assert not _of(second.book.resume(T0 + 1_000), Send)
    listed, unlisted = placed
    row = orjson.loads(orjson.dumps(order_json(listed, "PARTIALLY_FILLED", "0.001")))
    commands = second.book.on_open_orders(_scan([row]), T0 + 1_000, reconcile=True)
    [fetch] = [c.request for c in _of(commands, Send) if c.request.op is Op.FETCH_ORDER]
    assert fetch.params["origClientOrderId"] == unlisted.key  # only the one the scan does not list
    leg = second.book.leg(listed.key)
    assert leg is not None and leg.state.status is OrderStatus.PARTIALLY_FILLED and leg.resync_left == 0
    assert [c.request.op for c in _of(commands, Send) if c.request.key == listed.key] == [Op.MY_TRADES]


def test_open_orders_scans_use_the_cheapest_queries() -> None:
    from actors._recovery import open_order_scans, split_by_pair
    from engine.domain import Pair

    few = [Pair(f"A{i}/USDT") for i in range(13)]
    scans = open_order_scans(few, lambda pair: lambda r: None)
    assert len(scans) == 13 and all(s.weight == 6 and s.params["symbol"] for s in scans)  # 78 ≤ 80
    many = [*few, Pair("B/USDT")]
    [scan] = open_order_scans(many, lambda pair: lambda r: None)
    assert scan.weight == 80 and "symbol" not in scan.params
    rows = [{"symbol": "A1USDT", "clientOrderId": "x"}, {"symbol": "ZZZUSDT", "clientOrderId": "y"}]
    split = split_by_pair(GatewayResult(scan, data=rows), {"A1USDT": many[1], "BUSDT": many[-1]})
    assert split[many[1]].data == [rows[0]] and split[many[-1]].data == []


def test_account_positions_from_the_stream_keep_balances_current() -> None:
    from actors._reconcile import ReconcileMixin
    from actors._wallet import AccountBook
    from engine.clock import ManualClock
    from engine.exchange import AccountPosition, BalanceEntry

    root = ReconcileMixin()
    root._clock = ManualClock(5_000)
    root._balances = AccountBook()
    root._balances.snapshot({"updateTime": 1_000, "balances": [{"asset": "BTC", "free": "1", "locked": "0"},
                                                              {"asset": "USDT", "free": "5"}]}, 4_000)  # fmt: skip
    D = Decimal
    root._apply_position(AccountPosition(2_000, 2_000, (BalanceEntry("BTC", D("1.01"), D("0")),)))
    root._apply_position(AccountPosition(500, 500, (BalanceEntry("USDT", D("0"), D("0")),)))  # older: ignored
    account = root._balances.account
    assert account is not None
    rows = {r["asset"]: r for r in account["balances"]}
    assert rows["BTC"]["free"] == "1.01" and rows["USDT"]["free"] == "5" and root._balances.as_of_ms == 5_000


def test_missing_fills_are_paged_through_myTrades_until_every_one_is_found() -> None:
    h = Harness()
    h.place(request(amount="0.2"))
    create = h.sent[-1]
    # the exchange executed 1001 fills of 0.0001 + …, known here: none (the stream was down)
    h.answer(order_json(create, "PARTIALLY_FILLED", "0.1001"))
    trades_req = next(r for r in h.sent if r.op is Op.MY_TRADES)
    assert trades_req.params["fromId"] == "0" and trades_req.params["limit"] == "1000"
    order_id = int(trades_req.params["orderId"])

    def row(i: int) -> dict[str, Any]:
        return {"symbol": "BTCUSDT", "id": i, "orderId": order_id, "price": "60000", "qty": "0.0001",
                "quoteQty": "6", "commission": "0", "commissionAsset": "BNB", "time": T0 + i, "isBuyer": True,
                "isMaker": True}  # fmt: skip

    h.answer([row(i) for i in range(1, 1001)], index=h.sent.index(trades_req))
    page2 = h.sent[-1]
    assert page2.op is Op.MY_TRADES and page2.params["fromId"] == "1001"
    h.answer([row(1001)], index=h.sent.index(page2))
    assert len(h.fills()) == 1001 and h.sent[-1] is page2  # complete: no further fetch


def test_fills_of_a_restored_order_whose_request_was_summed_up_are_added_to_its_trade() -> None:
    # The request was summed up (trade row) while its limit stayed open (its cancel refused); the engine then
    # restarted. Every later fill of that order must reach the trade, as without the restart.
    cid = client_order_id("summed-up", pair="BTC/USDT")
    when = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    stored_order = Order(
        client_order_id=cid, exchange_order_id=78, request_id="r-sum", pair=PAIR, side=Side.BUY,
        order_type=OrderType.LIMIT, status=OrderStatus.PARTIALLY_FILLED, price=Decimal(60000),
        amount=Decimal("0.01"), filled=Decimal("0.004"), quote_filled=Decimal(240), created_at=when, updated_at=when,
    )  # fmt: skip
    stored_fills = [
        Fill(symbol="BTCUSDT", pair=PAIR, trade_id=1, client_order_id=cid, exchange_order_id=78, side=Side.BUY,
             price=Decimal(60000), quantity=Decimal("0.004"), quote_quantity=Decimal(240), commission=Decimal(0),
             commission_asset="BNB", is_maker=True, time=when)
    ]  # fmt: skip
    trade = Trade(
        request_id="r-sum", pair=PAIR, side=Side.BUY, requested=Decimal("0.01"), filled=Decimal("0.004"),
        average_price=Decimal(60000), status=TradeStatus.PARTIAL, created_at=when, closed_at=when,
        remainder=Decimal("0.006"), note="cancel refused",
    )  # fmt: skip
    h = Harness()
    h.book.restore([], [stored_order], {cid: stored_fills}, h.now, trades={"r-sum": trade})
    h.run(h.book.resume(h.now))
    for trade_id, last, cum, status in ((2, "0.003", "0.007", "PARTIALLY_FILLED"), (3, "0.003", "0.01", "FILLED")):
        report = _report(cid, x="TRADE", status=status, last=last, cum=cum, trade_id=trade_id, order_id=78, fee="0.1")
        h.run(h.book.on_report(report, h.now))
    last_trade = h.trades()[-1]
    assert last_trade.filled == Decimal("0.01") and last_trade.status is TradeStatus.FILLED
    assert last_trade.fees == {"BNB": Decimal("0.2")} and last_trade.remainder == 0
    assert sorted(f.trade_id for f in h.fills()) == [2, 3]


def test_a_tracking_only_book_looks_up_an_order_whose_create_was_never_answered() -> None:
    # Past the restart budget the root runs the book without timers: an order whose create answer died with
    # the actor is left to its own path (the resolver's timers) in a live book, but in a tracking-only book
    # reconciliation is the only thing that will ever ask about it.
    from engine.pair._params import fetch_request

    h = Harness()
    h.place(request())
    create = h.sent[-1]
    assert create.op is Op.CREATE_ORDER
    assert h.book.reconcilable() == []  # a live book leaves it to the resolver's lookups
    [order] = h.book.reconcilable(tracking_only=True)
    fetch = fetch_request(h.book.symbol, h.book.pair, order.client_order_id)
    assert fetch.op is Op.FETCH_ORDER and fetch.params["origClientOrderId"] == order.client_order_id
    found = order_json(create, "FILLED", "0.01", [("60000", "0.01")])
    h.run(h.book.on_result(GatewayResult(fetch, data=found), h.now))
    leg = h.book.leg(order.client_order_id)
    assert leg is not None and leg.state.status is OrderStatus.FILLED
    assert h.book.reconcilable(tracking_only=True) == []


def _stored_state(h: Harness, request_id: str) -> tuple[list[RequestRecord], list[Order]]:
    records = [r for r in h.stored if isinstance(r, RequestRecord) and r.request.request_id == request_id]
    orders = {o.client_order_id: o for o in h.stored if isinstance(o, Order) and o.request_id == request_id}
    return records, list(orders.values())


def test_a_queued_requests_limit_resumes_with_the_time_it_had_left_since_it_was_placed() -> None:
    # Made at T0, placed at T0+50 s behind another request (conflict_policy = queue), 60 s limit; the engine
    # restarts at T0+75 s: 35 s are left. Counted from the request it had none, and fell back 35 s early.
    h = Harness(conflict_policy="queue")
    first, queued = request(limit_timeout_s=Decimal(60)), request(limit_timeout_s=Decimal(60))
    h.place(first)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.place(queued)
    h.now = T0 + 50_000
    h.answer(order_json(h.sent[0], "FILLED", "0.01", [("60000", "0.01")]), index=0)
    create = [r for r in h.sent if r.op is Op.CREATE_ORDER][-1]
    assert create.key != h.sent[0].key
    h.answer(order_json(create, "NEW"))
    records, orders = _stored_state(h, queued.request_id)

    again = Harness(conflict_policy="queue")
    again.now = T0 + 75_000
    assert again.book.restore(records, orders, {}, again.now) == 1
    again.run(again.book.resume(again.now))
    assert again.sent == []  # nothing canceled; its status comes with the start's scan
    again.scan()
    assert [r.op for r in again.sent] == [Op.FETCH_ORDER]  # not listed: looked up
    assert again.timers[f"plan:{queued.request_id}"] == T0 + 110_000


def test_a_limit_canceled_outside_before_its_deadline_gets_no_fallback_after_a_restart_past_it() -> None:
    first = Harness()
    req = request(limit_timeout_s=Decimal(10))
    first.place(req)
    create = first.sent[-1]
    data = order_json(create, "NEW")
    first.answer(data)
    first.now = T0 + 2_000
    # Canceled in the Binance UI with 0.004 executed, the fills not yet known: the request waits for them.
    canceled = _report(create.key, x="CANCELED", status="CANCELED", last="0", cum="0.004", trade_id=0,
                       order_id=data["orderId"])  # fmt: skip
    first.run(first.book.on_report(canceled, first.now))
    assert first.sent[-1].op is Op.MY_TRADES and not first.trades()
    records, orders = _stored_state(first, req.request_id)
    assert [o.status for o in orders] == [OrderStatus.CANCELED]

    second = Harness()  # the engine died; it is back after the deadline
    second.now = T0 + 20_000
    assert second.book.restore(records, orders, {}, second.now) == 1
    second.run(second.book.resume(second.now))
    fetch = next(r for r in second.sent if r.op is Op.FETCH_ORDER)
    answer = order_json(fetch, "CANCELED", "0.004") | {"cummulativeQuoteQty": "240", "clientOrderId": fetch.key}
    second.answer(answer, index=second.sent.index(fetch))
    assert not [r for r in second.sent if r.op in (Op.CREATE_ORDER, Op.CANCEL_ORDER)], "nothing more to trade"
