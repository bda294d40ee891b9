"""Numbers in what the pair book tells (fallback events, alerts, trade notes) read plain: the exchange's 8-place
scale ("0.00400000", "58000.00000000") and a tick-rounded price's scale ("60060.00") are storage detail."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from engine.api import EventKind
from engine.domain import Fill, Order, OrderStatus, OrderType, Side, Trade, TradeStatus
from engine.exchange import client_order_id
from engine.execution import SlippageAction
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.pair import Alert, Command, LookupStored, Persist
from tests.pair._book_helpers import PAIR, T0, Harness, order_json, request
from tests.pair.test_recover import _report


class _Alerting(Harness):
    """The harness, keeping the alerts too."""

    def __init__(self, **settings: Any) -> None:
        self.alerts: list[Alert] = []
        super().__init__(**settings)

    def run(self, commands: list[Command]) -> None:
        self.alerts += [c for c in commands if isinstance(c, Alert)]
        super().run(commands)


def _capped_fallback_sent(h: Harness) -> None:
    """A limit at 60,000 times out with the ask at 60,600, beyond the 0.1 % bound: its fallback goes out capped."""
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.run(h.book.on_price(Decimal("60500"), Decimal("60600"), h.now))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", cancel=True))


def test_an_ioc_fallback_at_the_bound_is_told_at_its_price_without_the_ticks_scale() -> None:
    h = Harness(slippage_action=SlippageAction.CAP, max_slippage=Decimal("0.001"))
    _capped_fallback_sent(h)
    [event] = [e for e in h.events if e.kind is EventKind.FALLBACK]
    assert event.message == "limit timeout; fallback IOC limit at 60060, capped by the slippage guard"


def test_a_capped_ioc_that_expires_says_why_with_the_numbers_and_alerts() -> None:
    # Found hands-on: the default `cap` ended "fallback_incomplete: IOC at the slippage bound expired" with no
    # alert and no numbers, as if liquidity had run out; only `refuse` said the market was beyond the bound.
    h = _Alerting(slippage_action=SlippageAction.CAP, max_slippage=Decimal("0.001"))
    _capped_fallback_sent(h)
    h.answer(order_json(h.sent[-1], "EXPIRED"))
    [trade] = h.trades()
    assert trade.note.endswith(
        "fallback_incomplete: IOC at the slippage bound expired with a remainder (slippage guard: the market was "
        "beyond 0.1% from reference 60000; capped at 60060)"
    ), trade.note
    [alert] = [a for a in h.alerts if a.key == "slippage_guard"]
    assert "capped at 60060" in alert.message


def test_fills_never_found_are_alerted_with_the_quantity_plain() -> None:
    h = _Alerting()
    req = request(amount="0.01")
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))
    h.fire(f"plan:{req.request_id}")
    h.answer(order_json(h.sent[-1], "CANCELED", "0.00400000", cancel=True))  # its fills are not in the answer
    while not h.alerts:
        asked: GatewayRequest = [r for r in h.sent if r.op is Op.MY_TRADES][-1]
        h.answer([], index=h.sent.index(asked))
        if not h.alerts:
            h.fire(next(k for k in h.timers if k.startswith("fills:")))
    assert [(a.key, a.message) for a in h.alerts] == [("fills_missing", "0.004 executed but no fills found")]


def test_an_order_placed_outside_the_engine_is_told_plain() -> None:
    h = _Alerting()
    row = {"symbol": "BTCUSDT", "orderId": 99, "clientOrderId": "and_web_1", "price": "58000.00000000",
           "origQty": "0.50000000", "executedQty": "0.00000000", "cummulativeQuoteQty": "0.00000000", "status": "NEW",
           "timeInForce": "GTC", "type": "LIMIT", "side": "SELL", "time": T0, "updateTime": T0}  # fmt: skip
    h.run(h.book.on_open_orders(GatewayResult(GatewayRequest(Op.OPEN_ORDERS, {"symbol": "BTCUSDT"}), data=[row]),
                                h.now))  # fmt: skip
    [alert] = h.alerts
    assert alert.message == (
        "external order (placed outside the engine) seen via openOrders: sell 0.5 LIMIT at 58000; tracked, not managed"
    )


def test_a_late_fill_is_noted_plain() -> None:
    h = _Alerting()
    cid = client_order_id("left-memory", pair="BTC/USDT")
    when = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    stored = Order(
        client_order_id=cid, exchange_order_id=77, request_id="r-left", pair=PAIR, side=Side.BUY,
        order_type=OrderType.LIMIT, status=OrderStatus.CANCELED, price=Decimal(60000), amount=Decimal("0.01"),
        filled=Decimal("0.004"), quote_filled=Decimal(240), created_at=when, updated_at=when,
    )  # fmt: skip
    fills = [
        Fill(symbol="BTCUSDT", pair=PAIR, trade_id=1, client_order_id=cid, exchange_order_id=77, side=Side.BUY,
             price=Decimal(60000), quantity=Decimal("0.004"), quote_quantity=Decimal(240), commission=Decimal(0),
             commission_asset="BNB", is_maker=True, time=when)
    ]  # fmt: skip
    trade = Trade(
        request_id="r-left", pair=PAIR, side=Side.BUY, requested=Decimal("0.01"), filled=Decimal("0.004"),
        average_price=Decimal(60000), fees={}, status=TradeStatus.PARTIAL, created_at=when, closed_at=when,
        remainder=Decimal("0.006"), note="limit timeout",
    )  # fmt: skip
    late = _report(cid, x="TRADE", status="CANCELED", last="0.00200000", cum="0.00600000", trade_id=2, order_id=77)
    [lookup] = [c for c in h.book.on_report(late, h.now) if isinstance(c, LookupStored)]
    commands = h.book.on_stored(lookup.sighting, stored, fills, trade, h.now)
    [updated] = [c.item for c in commands if isinstance(c, Persist) and isinstance(c.item, Trade)]
    assert updated.note == "limit timeout; late fill of 0.002 after the summary"
    [alert] = [c for c in commands if isinstance(c, Alert)]
    assert alert.message == "fill of 0.002 arrived after request r-left was summarized; trade updated"
