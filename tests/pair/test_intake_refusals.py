"""What the pure book's intake refusals (`engine.pair._intake`) tell a caller's code: the conflict says exactly what is
in the way and how to queue instead; the risk and wallet refusals carry their numbers in `details` (exact plain
decimals), not only in the text."""

from __future__ import annotations

from decimal import Decimal

from engine.api import Refusal, RefusalReason
from engine.domain import OrderRequest, Side, plain_decimal
from engine.execution import Decision, DefaultRiskManager, RiskSnapshot
from engine.execution import RefusalReason as RiskReason
from engine.pair import IntakeContext
from tests.pair._book_helpers import PAIR, Harness, order_json, request


def test_an_acknowledged_resting_buy_refuses_a_second_buy_at_another_price_and_says_how_to_queue() -> None:
    # The docstring said "in flight on the same side": an acknowledged resting buy is not in flight, yet it refuses.
    h = Harness()
    first = request(price="59000")
    h.place(first)
    h.answer(order_json(h.sent[-1], "NEW"))  # acknowledged: resting at the exchange
    for other in (request(price="58000"), request(side=Side.SELL, price="61000")):
        refusal = h.place(other)
        assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.CONFLICT, refusal
        assert refusal.details == {"request_id": first.request_id, "side": "buy"}
        assert f"{PAIR} is busy: its buy request {first.request_id} is still executing" in refusal.message
        assert "one request at a time" in refusal.message
        assert 'execution.conflict_policy = "queue"' in refusal.message, refusal.message
        assert '"parallel" to run requests of the same side at once' in refusal.message, refusal.message


def test_a_risk_limit_refusal_carries_the_value_and_the_bounds_in_details() -> None:
    h = Harness(risk=DefaultRiskManager(max_notional_per_order={"USDT": Decimal(1000)}, max_open_orders_per_pair=4))
    refusal = h.place(request(amount="0.05", price="60000.50"))
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.RISK_LIMIT, refusal
    assert refusal.details == {
        "pair": PAIR,
        "quote": "USDT",
        "amount": "0.05",
        "open_orders": "0",
        "reference_price": "60000.5",
        "notional": "3000.025",
        "max_order_notional": "1000",
        "max_open_orders_per_pair": "4",
    }
    assert h.sent == []


def test_a_custom_risk_managers_refusal_carries_what_the_engine_saw() -> None:
    class NoSells:
        def check_trade_allowed(self, request: OrderRequest, snapshot: RiskSnapshot) -> Decision:
            return Decision.refuse(RiskReason.RISK_LIMIT, "this strategy only buys")

    refusal = h_place(Harness(risk=NoSells()), request(side=Side.SELL, amount="0.01", price="60000"))
    assert refusal.message == "this strategy only buys"
    # A sell is worth at least the bid it may fill at (59990 < its limit here): the engine's valuation, exact.
    assert refusal.details == {"pair": PAIR, "quote": "USDT", "amount": "0.01", "open_orders": "0",
                               "reference_price": "60000", "notional": "600"}  # fmt: skip


def test_a_wallet_below_the_minimum_shows_its_value_to_the_satoshi_and_keeps_it_exact_in_details() -> None:
    wallet = Decimal(2) / Decimal(30000)  # 0.00006666666666666666666666666667: a computed valuation
    refusal = h_place(Harness(), request(), IntakeContext(wallet_btc=wallet, min_wallet_btc=Decimal("0.00010000")))
    assert refusal.reason is RefusalReason.WALLET_BELOW_MINIMUM
    assert refusal.message == "wallet worth 0.00006666 BTC, below the minimum 0.0001 BTC"
    assert refusal.details == {"min_wallet_btc": "0.0001", "wallet_btc": plain_decimal(wallet)}
    assert refusal.details["wallet_btc"].startswith("0.0000666666666666666")


def h_place(h: Harness, req: OrderRequest, ctx: IntakeContext | None = None) -> Refusal:
    refusal = h.place(req, ctx)
    assert isinstance(refusal, Refusal), refusal
    return refusal
