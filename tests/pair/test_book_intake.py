"""The pure pair book's intake: acceptance, refusals, conflicts, queueing, unknown create outcomes, memory, resume."""

from __future__ import annotations

from decimal import Decimal

from engine.api import Accepted, EventKind, Refusal, RefusalReason
from engine.domain import ClientOrderId, Order, OrderRequest, OrderStatus, RequestRecord, Side, TradeId, TradeStatus
from engine.exchange import OrderNotFound, OutcomeUnknown
from engine.execution import Decision, DefaultRiskManager, RiskSnapshot
from engine.execution import RefusalReason as RiskReason
from engine.gateway import Op
from engine.pair import IntakeContext, Schedule
from tests.pair._book_helpers import PAIR, T0, Harness, _trade_ids, order_json, request


def test_limit_accepted_then_filled() -> None:
    h = Harness()
    req = request()
    h.place(req)
    create = h.sent[-1]
    assert create.op is Op.CREATE_ORDER
    assert create.params["newClientOrderId"].startswith("bx-")
    assert create.params["price"] == "60000" and create.params["quantity"] == "0.01"
    # the request is stored with its first order's write-ahead (crash recovery resumes from it)
    assert isinstance(h.stored[0], RequestRecord) and h.stored[0].request == req
    assert isinstance(h.stored[1], Order) and h.stored[1].status is OrderStatus.PENDING_SUBMIT  # write-ahead
    h.answer(order_json(create, "NEW"))
    outcome = h.outcomes[req.request_id][0]
    assert isinstance(outcome, Accepted) and outcome.order.status is OrderStatus.OPEN
    assert f"plan:{req.request_id}" in h.timers
    cid = ClientOrderId(create.params["newClientOrderId"])
    from engine.exchange import ExchangeOrderStatus
    from engine.orders import ExchangeStatus, FillEvent

    fill = FillEvent(
        TradeId(next(_trade_ids)), Decimal("0.01"), Decimal(60000), Decimal(600), Decimal(0), "BNB", True, T0 + 100
    )
    h.run(
        h.book.on_report_events(
            cid, (fill, ExchangeStatus(ExchangeOrderStatus.FILLED, Decimal("0.01"), Decimal(600))), h.now
        )
    )
    [trade] = h.trades()
    assert trade.status is TradeStatus.FILLED and trade.filled == Decimal("0.01") and trade.remainder == 0
    assert [e.kind for e in h.events].count(EventKind.DONE) == 1


def test_refusals_with_reasons() -> None:
    h = Harness(risk=DefaultRiskManager(max_notional_per_order={"USDT": Decimal(1000)}, max_open_orders_per_pair=4))
    assert h.place(request(amount="0.000001")).reason is RefusalReason.FILTER_FAILURE
    assert h.place(request(price="0.001")).reason is RefusalReason.FILTER_FAILURE
    assert h.place(request(amount="1")).reason is RefusalReason.RISK_LIMIT
    assert h.place(request(), IntakeContext(halted=True)).reason is RefusalReason.HALTED
    assert h.place(request(), IntakeContext(kill_switch=True)).reason is RefusalReason.KILL_SWITCH
    low = IntakeContext(wallet_btc=Decimal("0.00009"), min_wallet_btc=Decimal("0.0001"))
    refusal = h.place(request(), low)
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.WALLET_BELOW_MINIMUM
    assert h.sent == []


def test_conflict_refused_and_same_key_replayed() -> None:
    h = Harness()
    first = request(key="strategy-42")
    h.place(first)
    h.answer(order_json(h.sent[-1], "NEW"))
    assert h.place(request(side=Side.SELL)).reason is RefusalReason.CONFLICT
    again = h.place(request(key="strategy-42"))
    assert isinstance(again, Accepted) and again.duplicate
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1


def test_queue_policy_starts_the_next_when_the_pair_is_free() -> None:
    h = Harness(conflict_policy="queue")
    first, second = request(), request(side=Side.SELL)
    h.place(first)
    h.place(second)
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1
    h.answer(order_json(h.sent[-1], "FILLED", "0.01", [("60000", "0.01")]))
    assert h.sent[-1].params["side"] == "SELL"


def test_unknown_outcome_resolved_by_lookup_without_resend() -> None:
    h = Harness()
    req = request()
    h.place(req)
    create = h.sent[-1]
    h.answer(error=OutcomeUnknown("timeout", operation="create_order"))
    assert req.request_id not in h.outcomes
    lookups = [r for r in h.sent if r.op is Op.FETCH_ORDER]
    if not lookups:
        h.fire(next(k for k in h.timers if k.startswith("lookup:")))
    fetch = h.sent[-1]
    assert fetch.op is Op.FETCH_ORDER and fetch.params["origClientOrderId"] == create.params["newClientOrderId"]
    h.answer(order_json(fetch, "NEW"))
    assert isinstance(h.outcomes[req.request_id][0], Accepted)
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1


def test_unknown_outcome_not_found_after_grace_resends_the_same_id() -> None:
    h = Harness(unknown_outcome_grace_ms=3000)
    req = request()
    h.place(req)
    cid = h.sent[-1].params["newClientOrderId"]
    h.answer(error=OutcomeUnknown("5xx", operation="create_order"))
    for _ in range(20):
        pending = [k for k in h.timers if k.startswith("lookup:")]
        if pending:
            h.fire(pending[0])
        last = h.sent[-1]
        if last.op is Op.CREATE_ORDER and len([r for r in h.sent if r.op is Op.CREATE_ORDER]) == 2:
            break
        if last.op is Op.FETCH_ORDER:
            h.answer(error=OrderNotFound("Order does not exist.", operation="fetch_order", code=-2013))
    creates = [r for r in h.sent if r.op is Op.CREATE_ORDER]
    assert len(creates) == 2 and creates[1].params["newClientOrderId"] == cid
    assert h.now - T0 >= 3000  # "not found" inside the grace period proved nothing


def test_an_order_rest_does_not_show_for_25_s_after_an_unknown_create_is_not_sent_twice() -> None:
    # Binance's REST lags its matching engine by 10-20 s, more under load. A create answered 503 (-1007) that did
    # execute, unseen by REST for 25 s: at a 15 s grace the "not found" lookups concluded "not created" and the
    # same client id went out again; the first order had filled, so Binance took the second one: bought twice.
    h = Harness()  # the default grace
    req = request()
    h.place(req)
    h.answer(error=OutcomeUnknown("503 -1007", operation="create_order"))
    while h.now - T0 < 25_000:
        creates = [r for r in h.sent if r.op is Op.CREATE_ORDER]
        assert len(creates) == 1, f"sent again after {h.now - T0} ms of 'not found'"
        pending = [k for k in h.timers if k.startswith("lookup:")]
        assert pending, "the lookups stopped"
        h.fire(pending[0])
        last = h.sent[-1]
        assert last.op is Op.FETCH_ORDER, f"sent {last.op} after {h.now - T0} ms of 'not found'"
        h.answer(error=OrderNotFound("Order does not exist.", operation="fetch_order", code=-2013))
    h.fire(next(k for k in h.timers if k.startswith("lookup:")))
    h.answer(order_json(h.sent[-1], "FILLED", "0.01", [("60000", "0.01")]))  # REST shows it at last
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1
    assert isinstance(h.outcomes[req.request_id][0], Accepted)


def test_finished_requests_leave_memory_but_their_keys_are_still_seen() -> None:
    h = Harness()
    req = request(key="once")
    h.place(req)
    cid = ClientOrderId(h.sent[-1].params["newClientOrderId"])
    h.answer(order_json(h.sent[-1], "FILLED", "0.01", [("60000", "0.01")]))
    assert h.book.maybe_seen(request(key="once")) is None  # still in memory: the book answers itself
    assert h.book.forget_finished() == 1
    assert h.book.leg(cid) is None and h.book.execution(req.request_id) is None
    assert h.book.maybe_seen(request(key="once")) == cid  # → the actor looks it up in the database
    assert h.book.maybe_seen(request(key="never-seen")) is None


def test_risk_manager_is_pluggable_and_sees_the_open_orders() -> None:
    seen: list[RiskSnapshot] = []

    class OnlyOne:
        def check_trade_allowed(self, req: OrderRequest, snapshot: RiskSnapshot) -> Decision:
            seen.append(snapshot)
            if snapshot.open_orders_by_pair.get(req.pair, 0) >= 1:
                return Decision.refuse(RiskReason.RISK_LIMIT, "one at a time")
            return Decision.allow()

    h = Harness(risk=OnlyOne(), conflict_policy="queue")
    h.place(request())
    h.answer(order_json(h.sent[-1], "NEW"))
    refusal = h.place(request(side=Side.SELL))
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.RISK_LIMIT
    assert seen[-1].open_orders_by_pair == {PAIR: 1} and seen[-1].reference_price == Decimal(60000)


def test_unknown_wallet_is_refused_when_the_wallet_is_required() -> None:
    h = Harness()
    refusal = h.place(request(), IntakeContext(require_wallet=True))
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.WALLET_BELOW_MINIMUM
    assert h.sent == []


def test_resume_rearms_the_plan_timer() -> None:
    h = Harness(limit_timeout_ms=5000)
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    assert Schedule(f"plan:{req.request_id}", T0 + 5000) in h.book.resume(h.now)


def test_a_sell_is_valued_at_what_it_may_fill_at_not_at_a_low_limit() -> None:
    # Book 59990 / 60010, cap 1,000 USDT. A sell fills at its limit or above (the bid, when marketable): valued at
    # its own low limit it would pass a cap it exceeds many times over.
    from engine.domain import OrderType

    h = Harness(risk=DefaultRiskManager(max_notional_per_order={"USDT": Decimal(1000)}))
    for amount, price, order_type in (("10", "1", OrderType.MARKET), ("0.09", "10500", OrderType.LIMIT)):
        refusal = h.place(request(amount, price, side=Side.SELL, order_type=order_type))
        assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.RISK_LIMIT, (amount, price, refusal)
    assert not [r for r in h.sent if r.op is Op.CREATE_ORDER]
    assert h.place(request("0.01", "61000", side=Side.SELL)) is None  # resting above the bid: 610, within the cap
    fresh = Harness(risk=DefaultRiskManager(max_notional_per_order={"USDT": Decimal(1000)}))
    # 0.02 at the ask (60010) is 1,200.2: over the cap, whatever low price came with the market buy.
    market_buy = fresh.place(request("0.02", "50000", order_type=OrderType.MARKET))
    assert isinstance(market_buy, Refusal) and market_buy.reason is RefusalReason.RISK_LIMIT, market_buy


def test_a_market_order_below_the_lot_step_is_a_filter_failure_like_a_limit_of_that_size() -> None:
    from engine.domain import OrderType

    h = Harness()
    for order_type, price in ((OrderType.MARKET, None), (OrderType.LIMIT, "60000")):
        refusal = h.place(request("0.000001", price, order_type=order_type))
        assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.FILTER_FAILURE, (order_type, refusal)
        assert "LOT_SIZE" in refusal.message  # not "rejected: filled"
    assert not [r for r in h.sent if r.op is Op.CREATE_ORDER]
