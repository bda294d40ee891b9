"""A trade's status and note say the same with and without a restart, and for a fill that arrives after the
summary (found by the diff review of the change that made `filled` mean "all any order could carry")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from engine.domain import Fill, Order, OrderStatus, OrderType, Side, Trade, TradeStatus
from engine.exchange import client_order_id
from engine.gateway import Op
from engine.pair import LookupStored, Persist
from tests.pair._book_helpers import PAIR, T0, Harness, order_json, request
from tests.pair.test_recover import _report, _stored_state


def test_a_primary_filled_before_a_restart_is_not_told_as_a_cancel_that_came_too_late() -> None:
    # Restored with its order closed, the plan waits in the canceling phase, though no cancel was ever sent: the
    # note read "filled before the cancel took effect".
    first = Harness()
    req = request(limit_timeout_s=Decimal(10))
    first.place(req)
    first.answer(order_json(first.sent[-1], "FILLED", "0.01"))  # its fills are fetched from myTrades
    records, orders = _stored_state(first, req.request_id)
    second = Harness()
    second.now = T0 + 3_000
    assert second.book.restore(records, orders, {}, second.now) == 1
    second.run(second.book.resume(second.now))
    fetch = next(r for r in second.sent if r.op is Op.FETCH_ORDER)
    answer = order_json(fetch, "FILLED", "0.01") | {"cummulativeQuoteQty": "600", "clientOrderId": fetch.key}
    second.answer(answer, index=second.sent.index(fetch))
    for trades in [r for r in second.sent if r.op is Op.MY_TRADES][-1:]:
        second.answer([{"symbol": "BTCUSDT", "id": 1, "orderId": answer["orderId"], "price": "60000", "qty": "0.01",
                        "quoteQty": "600", "commission": "0", "commissionAsset": "BNB", "time": T0, "isBuyer": True,
                        "isMaker": True, "isBestMatch": True}], index=second.sent.index(trades))  # fmt: skip
    [trade] = second.trades()
    assert trade.status is TradeStatus.FILLED and "cancel" not in trade.note, trade.note


def test_a_late_fill_that_leaves_less_than_a_lot_step_makes_the_trade_filled_with_dust() -> None:
    h = Harness()
    cid = client_order_id("left-memory", pair="BTC/USDT")
    when = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    stored = Order(client_order_id=cid, exchange_order_id=77, request_id="r-left", pair=PAIR, side=Side.BUY,
                   order_type=OrderType.LIMIT, status=OrderStatus.CANCELED, price=Decimal(60000),
                   amount=Decimal("0.01"), filled=Decimal("0.004"), quote_filled=Decimal(240), created_at=when,
                   updated_at=when)  # fmt: skip
    fills = [Fill(symbol="BTCUSDT", pair=PAIR, trade_id=1, client_order_id=cid, exchange_order_id=77, side=Side.BUY,
                  price=Decimal(60000), quantity=Decimal("0.004"), quote_quantity=Decimal(240), commission=Decimal(0),
                  commission_asset="BNB", is_maker=True, time=when)]  # fmt: skip
    trade = Trade(request_id="r-left", pair=PAIR, side=Side.BUY, requested=Decimal("0.010005"),
                  filled=Decimal("0.004"), average_price=Decimal(60000), fees={}, status=TradeStatus.PARTIAL,
                  created_at=when, closed_at=when, remainder=Decimal("0.006005"), note="limit timeout")  # fmt: skip
    late = _report(cid, x="TRADE", status="CANCELED", last="0.00600000", cum="0.01000000", trade_id=2, order_id=77)
    [lookup] = [c for c in h.book.on_report(late, h.now) if isinstance(c, LookupStored)]
    commands = h.book.on_stored(lookup.sighting, stored, fills, trade, h.now)
    [updated] = [c.item for c in commands if isinstance(c, Persist) and isinstance(c.item, Trade)]
    # 0.000005 left, below the 0.00001 step: as the same fills arriving in time would have ended it
    assert (updated.status, updated.filled, updated.remainder, updated.dust) == (
        TradeStatus.FILLED, Decimal("0.01"), Decimal("0.000005"), True)  # fmt: skip
