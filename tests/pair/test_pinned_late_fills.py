"""Late fills after a trade summary: behaviour a mutation test of recovery found unpinned."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from engine.domain import Fill, Order, OrderStatus, OrderType, Side, Trade, TradeStatus
from engine.exchange import client_order_id
from tests.pair._book_helpers import PAIR, T0, Harness
from tests.pair.test_recover import _report


def test_late_fills_after_the_summary_keep_the_trade_s_average_price_and_dust_right() -> None:
    # P39 (_recover.py:360): the average of 0.004 @ 60000 and 0.006 @ 61000 is 60600, not more;
    # P43 (_recover.py:372): a trade filled exactly is not dust.
    cid = client_order_id("summed-up", pair="BTC/USDT")
    when = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    stored_order = Order(
        client_order_id=cid, exchange_order_id=78, request_id="r-sum", pair=PAIR, side=Side.BUY,
        order_type=OrderType.LIMIT, status=OrderStatus.PARTIALLY_FILLED, price=Decimal(61000),
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
    report = _report(cid, x="TRADE", status="FILLED", last="0.006", cum="0.01", trade_id=2, order_id=78,
                     price="61000")  # fmt: skip
    h.run(h.book.on_report(report, h.now))
    last_trade = h.trades()[-1]
    assert last_trade.filled == Decimal("0.01") and last_trade.status is TradeStatus.FILLED
    assert last_trade.average_price == Decimal(60600)
    assert last_trade.dust is False
