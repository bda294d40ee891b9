"""The pure pair book, driven step by step with Binance-shaped responses: every scenario without threads."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.api import Accepted, EventKind, Refusal, RefusalReason
from engine.domain import (
    ClientOrderId,
    FallbackKind,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    Pair,
    RequestId,
    RequestRecord,
    Side,
    Trade,
    TradeId,
    TradeStatus,
)
from engine.exchange import FilterRejected, InsufficientBalance, OrderNotFound, OutcomeUnknown
from engine.execution import (
    Decision,
    DefaultRiskManager,
    ExecutionConfig,
    RiskManager,
    RiskSnapshot,
    SlippageAction,
    SymbolRules,
)
from engine.execution import RefusalReason as RiskReason
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.pair import (
    Command,
    Emit,
    IntakeContext,
    PairBook,
    PairSettings,
    Persist,
    Resolve,
    Schedule,
    Send,
    WriteAhead,
)

PAIR = Pair("BTC/USDT")
T0 = 1_767_225_600_000
RULES = SymbolRules.from_exchange_info(
    {
        "symbol": "BTCUSDT",
        "status": "TRADING",
        "baseAsset": "BTC",
        "quoteAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "100", "stepSize": "0"},
            {
                "filterType": "NOTIONAL",
                "minNotional": "5",
                "applyMinToMarket": True,
                "maxNotional": "9000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
    }
)
_ids = itertools.count(1)
_trade_ids = itertools.count(1000)


def request(
    amount: str = "0.01", price: str | None = "60000", side: Side = Side.BUY, key: str | None = None, **kw: Any
) -> OrderRequest:
    n = next(_ids)
    return OrderRequest(
        request_id=RequestId(f"r{n}"),
        pair=PAIR,
        side=side,
        amount=Decimal(amount),
        price=Decimal(price) if price else None,
        idempotency_key=key or f"key-{n}",
        created_at=datetime.fromtimestamp(T0 / 1000, tz=UTC),
        **kw,
    )


def order_json(
    req: GatewayRequest,
    status: str,
    executed: str = "0",
    fills: Sequence[tuple[str, str]] = (),
    cancel: bool = False,
) -> dict[str, Any]:
    p = req.params
    cid = p.get("newClientOrderId") or p["origClientOrderId"]
    fill_rows = [
        {"price": price, "qty": qty, "commission": "0", "commissionAsset": "BNB", "tradeId": next(_trade_ids)}
        for price, qty in fills
    ]
    quote = sum((Decimal(a) * Decimal(b) for a, b in fills), Decimal(0))
    data = {
        "symbol": "BTCUSDT",
        "orderId": abs(hash(cid)) % 10**9,
        "orderListId": -1,
        "clientOrderId": "cancel-1" if cancel else cid,
        "transactTime": T0 + 5,
        "price": p.get("price", "0"),
        "origQty": p.get("quantity", "0.01"),
        "executedQty": executed,
        "cummulativeQuoteQty": str(quote),
        "status": status,
        "timeInForce": p.get("timeInForce", "GTC"),
        "type": p.get("type", "LIMIT"),
        "side": p.get("side", "BUY"),
        "fills": fill_rows,
    }
    if cancel:
        data["origClientOrderId"] = cid
    return data


_PLAN_KNOBS = {"limit_timeout_ms", "fallback", "max_slippage", "slippage_action", "price_source"}


class Harness:
    """Runs the book's commands the way the actor does, recording what matters."""

    def __init__(self, risk: RiskManager | None = None, **settings: Any) -> None:
        plan = {k: settings.pop(k) for k in list(settings) if k in _PLAN_KNOBS}
        execution = ExecutionConfig(**{"max_slippage": Decimal("0.005"), "slippage_action": SlippageAction.CAP, **plan})
        self.book = PairBook(PAIR, RULES, PairSettings(execution=execution, **settings), risk=risk)
        self.now = T0
        self.sent: list[GatewayRequest] = []
        self.stored: list[Any] = []
        self.outcomes: dict[RequestId, list[Any]] = {}
        self.events: list[Any] = []
        self.timers: dict[str, int] = {}
        self.book.on_price(Decimal("59990"), Decimal("60010"), self.now)

    def run(self, commands: list[Command]) -> None:
        for cmd in commands:
            if isinstance(cmd, WriteAhead):
                self.stored.append(cmd.order)  # durable, then the create leaves
                self.sent.append(cmd.send)
            elif isinstance(cmd, Send):
                self.sent.append(cmd.request)
            elif isinstance(cmd, Persist):
                self.stored.append(cmd.item)
            elif isinstance(cmd, Resolve):
                self.outcomes.setdefault(cmd.request_id, []).append(cmd.outcome)
            elif isinstance(cmd, Emit):
                self.events.append(cmd.event)
            elif isinstance(cmd, Schedule):
                self.timers[cmd.key] = cmd.due_ms

    def place(self, req: OrderRequest, ctx: IntakeContext | None = None) -> Any:
        self.run(self.book.place(req, self.now, ctx or IntakeContext()))
        return self.outcomes.get(req.request_id, [None])[-1]

    def answer(self, data: Any = None, error: Any = None, index: int = -1) -> None:
        self.run(self.book.on_result(GatewayResult(self.sent[index], data=data, error=error), self.now))

    def fire(self, key: str) -> None:
        self.now = max(self.now, self.timers.pop(key))
        self.run(self.book.on_timer(key, self.now))

    def trades(self) -> list[Trade]:
        return [s for s in self.stored if isinstance(s, Trade)]

    def fills(self) -> list[Fill]:
        return [s for s in self.stored if isinstance(s, Fill)]


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


def test_no_fill_timeout_cancel_then_market_fallback() -> None:
    h = Harness(limit_timeout_ms=5000)
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    cancel = h.sent[-1]
    assert cancel.op is Op.CANCEL_ORDER and cancel.priority == 0
    h.answer(order_json(cancel, "CANCELED", cancel=True))
    fallback = h.sent[-1]
    assert fallback.op is Op.CREATE_ORDER and fallback.params["type"] == "MARKET"
    assert fallback.params["quantity"] == "0.01"
    assert fallback.params["newClientOrderId"].endswith("-f1")
    h.answer(order_json(fallback, "FILLED", "0.01", [("60010", "0.004"), ("60011", "0.006")]))
    [trade] = h.trades()
    assert trade.status is TradeStatus.FILLED and trade.filled == Decimal("0.01")
    assert trade.average_price == (Decimal("60010") * Decimal("0.004") + Decimal("60011") * Decimal("0.006")) / Decimal(
        "0.01"
    )
    assert "limit timeout; fallback market" in trade.note
    assert EventKind.FALLBACK in [e.kind for e in h.events]


def test_partial_fill_then_fallback_for_the_exact_remainder() -> None:
    h = Harness()
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "PARTIALLY_FILLED", "0.00337", [("60000", "0.00337")]))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", "0.00337", cancel=True))
    fallback = h.sent[-1]
    assert fallback.params["quantity"] == "0.00663"
    h.answer(order_json(fallback, "FILLED", "0.00663", [("60010", "0.00663")]))
    [trade] = h.trades()
    assert trade.filled == Decimal("0.01") and trade.status is TradeStatus.FILLED
    assert len(h.fills()) == 2 and sum(f.quantity for f in h.fills()) == Decimal("0.01")


def test_cancel_racing_a_fill_means_no_fallback() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    cancel = h.sent[-1]
    h.answer(error=OrderNotFound("Unknown order sent.", operation="cancel_order", code=-2011))
    fetch = h.sent[-1]
    assert fetch.op is Op.FETCH_ORDER
    h.answer(order_json(fetch, "FILLED", "0.01", [("60000", "0.01")]))
    assert cancel.op is Op.CANCEL_ORDER
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1  # no fallback
    [trade] = h.trades()
    assert trade.status is TradeStatus.FILLED


def test_fallback_rejected_reports_the_remainder() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    h.answer(error=InsufficientBalance("insufficient", operation="create_order", code=-2010))
    [trade] = h.trades()
    assert trade.status is TradeStatus.FAILED and trade.remainder == Decimal("0.01")
    assert "fallback_rejected" in trade.note and "InsufficientBalance" in trade.note


@pytest.mark.parametrize(("action", "expect_type"), [(SlippageAction.REFUSE, None), (SlippageAction.CAP, "LIMIT")])
def test_slippage_guard(action: SlippageAction, expect_type: str | None) -> None:
    h = Harness(slippage_action=action, max_slippage=Decimal("0.001"))
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.run(h.book.on_price(Decimal("60500"), Decimal("60600"), h.now))  # ran away by 1 %
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))
    if expect_type is None:
        [trade] = h.trades()
        assert "slippage_refused" in trade.note and trade.remainder == Decimal("0.01")
    else:
        fallback = h.sent[-1]
        assert fallback.params["type"] == "LIMIT" and fallback.params["timeInForce"] == "IOC"
        assert Decimal(fallback.params["price"]) == Decimal("60060")  # 60000 × 1.001, within the bound


def test_volatility_spike_skips_the_wait() -> None:
    h = Harness(volatility_trigger=Decimal("0.02"))
    req = request(price="59000")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.run(h.book.on_price(Decimal("61500"), Decimal("61600"), h.now + 1000))
    assert h.sent[-1].op is Op.CANCEL_ORDER


def test_dust_remainder_is_reported_not_lost() -> None:
    h = Harness()
    req = request(amount="0.0001")
    h.place(req)
    h.answer(order_json(h.sent[-1], "PARTIALLY_FILLED", "0.00003", [("60000", "0.00003")]))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", "0.00003", cancel=True))
    [trade] = h.trades()
    assert trade.dust and trade.remainder == Decimal("0.00007")
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1


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


def test_limit_never_created_while_timing_out_goes_to_the_fallback() -> None:
    h = Harness(limit_timeout_ms=1000, unknown_outcome_grace_ms=3000)
    req = request()
    h.place(req)
    primary = ClientOrderId(h.sent[-1].params["newClientOrderId"])
    h.answer(error=OutcomeUnknown("5xx", operation="create_order"))
    h.fire(f"plan:{req.request_id}")  # the limit times out while its outcome is unknown
    for _ in range(20):
        if h.sent[-1].op is Op.CREATE_ORDER and h.sent[-1].params["newClientOrderId"] != primary:
            break
        if h.sent[-1].op is Op.FETCH_ORDER and not h.outcomes.get(req.request_id):
            h.answer(error=OrderNotFound("Order does not exist.", operation="fetch_order", code=-2013))
        pending = [k for k in h.timers if k.startswith("lookup:")]
        if pending:
            h.fire(pending[0])
    fallback = h.sent[-1]
    assert fallback.op is Op.CREATE_ORDER and fallback.params["newClientOrderId"].endswith("-f1")
    assert Op.CANCEL_ORDER not in [r.op for r in h.sent]  # nothing to cancel: it never existed
    leg = h.book.leg(primary)
    assert leg is not None and leg.state.status is OrderStatus.REJECTED  # closed, not left open forever
    assert [o.client_order_id for o in (lg.state for lg in h.book.open_legs())] == [fallback.params["newClientOrderId"]]


def test_fallback_never_rebuys_what_the_exchange_already_executed() -> None:
    # The cancel answer says 0.004 executed, but its fills are not known yet (no stream report, no FULL fills).
    h = Harness()
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", "0.004", cancel=True))
    ops = [r.op for r in h.sent[-2:]]
    assert Op.MY_TRADES in ops
    fallback = next(r for r in reversed(h.sent) if r.op is Op.CREATE_ORDER)
    assert fallback.params["quantity"] == "0.006"
    h.answer(order_json(fallback, "FILLED", "0.006", [("60010", "0.006")]), index=h.sent.index(fallback))
    assert h.trades() == []  # the limit's fills are still missing: the trade waits for them
    trades_req = next(r for r in h.sent if r.op is Op.MY_TRADES)
    row = {
        "symbol": "BTCUSDT",
        "id": 1,
        "orderId": int(trades_req.params["orderId"]),
        "price": "59950",
        "qty": "0.004",
        "quoteQty": "239.8",
        "commission": "0",
        "commissionAsset": "BNB",
        "time": T0 + 50,
        "isBuyer": True,
        "isMaker": True,
    }
    h.answer([row], index=h.sent.index(trades_req))
    [trade] = h.trades()
    assert trade.filled == Decimal("0.01") and trade.remainder == 0


def _last_orders(h: Harness) -> dict[str, Order]:
    """The latest stored state of every order, by client order id."""
    return {o.client_order_id: o for o in h.stored if isinstance(o, Order)}


def test_caller_cancel_cancels_and_never_falls_back() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "PARTIALLY_FILLED", "0.002", [("60000", "0.002")]))
    h.run(h.book.cancel(req.request_id, h.now))
    cancel = h.sent[-1]
    assert cancel.op is Op.CANCEL_ORDER
    h.answer(order_json(cancel, "CANCELED", "0.002", cancel=True))
    assert [r.op for r in h.sent].count(Op.CREATE_ORDER) == 1
    [trade] = h.trades()
    assert trade.status is TradeStatus.PARTIAL and trade.filled == Decimal("0.002")
    assert trade.remainder == Decimal("0.008") and "canceled by the caller" in trade.note


def test_cancel_before_the_ack_waits_for_the_ack() -> None:
    # A cancel overtaking its create finds nothing (-2011) and the order would rest: it waits for the ack.
    h = Harness(limit_timeout_ms=1000)
    req = request()
    h.place(req)
    create = h.sent[-1]
    h.fire(f"plan:{req.request_id}")
    assert h.sent[-1] is create
    h.answer(order_json(create, "NEW"))
    assert isinstance(h.outcomes[req.request_id][0], Accepted)
    cancel = h.sent[-1]
    assert cancel.op is Op.CANCEL_ORDER
    h.answer(order_json(cancel, "CANCELED", cancel=True))
    fallback = h.sent[-1]
    assert fallback.op is Op.CREATE_ORDER and fallback.params["type"] == "MARKET"


def test_percent_price_rejection_goes_straight_to_the_fallback() -> None:
    h = Harness()
    req = request()
    h.place(req)
    h.answer(error=FilterRejected("Filter failure: PERCENT_PRICE_BY_SIDE", filter_name="PERCENT_PRICE_BY_SIDE"))
    fallback = h.sent[-1]
    assert fallback.op is Op.CREATE_ORDER and fallback.params["newClientOrderId"].endswith("-f1")
    h.answer(order_json(fallback, "FILLED", "0.01", [("60010", "0.01")]))
    [trade] = h.trades()
    assert trade.status is TradeStatus.FILLED and "PERCENT_PRICE_BY_SIDE" in trade.note
    # the caller hears the fallback order: the request executes, so "rejected" would invite a second one
    [outcome] = h.outcomes[req.request_id]
    assert isinstance(outcome, Accepted) and outcome.order.client_order_id.endswith("-f1")


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


@settings(max_examples=150)
@given(
    primary_fill=st.integers(min_value=0, max_value=1000),
    fills_known=st.booleans(),
    fallback_fill=st.integers(min_value=0, max_value=1000),
    kind=st.sampled_from([FallbackKind.MARKET, FallbackKind.IOC_LIMIT, FallbackKind.NONE]),
    caller_cancels=st.booleans(),
)
def test_limit_plus_fallback_never_exceeds_and_accounts_for_the_amount(
    primary_fill: int, fills_known: bool, fallback_fill: int, kind: FallbackKind, caller_cancels: bool
) -> None:
    step = Decimal("0.00001")
    amount = Decimal("0.01")
    h = Harness(fallback=kind)
    req = request(amount=str(amount))
    h.place(req)
    first = (amount * primary_fill / 1000).quantize(step)
    status = "FILLED" if first == amount else ("PARTIALLY_FILLED" if first else "NEW")
    h.answer(order_json(h.sent[-1], status, str(first), [("59990", str(first))] if first and fills_known else []))
    if first < amount:
        if caller_cancels:
            h.run(h.book.cancel(req.request_id, h.now))
        else:
            h.fire(f"plan:{req.request_id}")
        cancel = next(r for r in reversed(h.sent) if r.op is Op.CANCEL_ORDER)
        h.answer(order_json(cancel, "CANCELED", str(first), cancel=True), index=h.sent.index(cancel))
    creates = [r for r in h.sent if r.op is Op.CREATE_ORDER]
    if caller_cancels:
        assert len(creates) == 1  # the caller's cancel is never followed by a fallback
    if len(creates) == 2:
        rest = Decimal(creates[1].params["quantity"])
        assert first + rest <= amount
        second = (rest * fallback_fill / 1000).quantize(step)
        status = "FILLED" if second == rest else "EXPIRED"
        h.answer(
            order_json(creates[1], status, str(second), [("60010", str(second))] if second else []),
            index=h.sent.index(creates[1]),
        )
    for trades_req in [r for r in h.sent if r.op is Op.MY_TRADES]:
        h.answer(
            [
                {
                    "symbol": "BTCUSDT",
                    "id": 7,
                    "orderId": int(trades_req.params["orderId"]),
                    "price": "59990",
                    "qty": str(first),
                    "quoteQty": "1",
                    "commission": "0",
                    "commissionAsset": "BNB",
                    "time": T0,
                    "isBuyer": True,
                    "isMaker": True,
                }
            ],
            index=h.sent.index(trades_req),
        )
    [trade] = h.trades()
    assert trade.filled + trade.remainder == amount
    assert trade.filled == sum((o.filled for o in _last_orders(h).values()), Decimal(0))
    assert sum(f.quantity for f in h.fills()) == trade.filled <= amount
    assert len({f.trade_id for f in h.fills()}) == len(h.fills())
