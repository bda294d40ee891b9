"""Fuzzing the wire: one market order, its FULL create answer, its stream reports and its myTrades rows delivered in any
order (with duplicates): the book must end with exactly the exchange's fills, average and fees."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.domain import Order, OrderStatus
from engine.gateway import GatewayResult, Op
from engine.pair import Alert
from tests.pair._book_helpers import T0, Harness, request
from tests.pair._wire_frames import report

FUZZ = settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))

fill_st = st.tuples(
    st.sampled_from(["60000", "60000.01", "60010.5", "59999.99"]),
    st.sampled_from(["0.001", "0.002", "0.00011", "0.003"]),
    st.sampled_from([("0", None), ("0.00000150", "BNB"), ("0.000001", "BTC"), ("0.06", "USDT")]),
)


@FUZZ
@given(
    fills=st.lists(fill_st, min_size=1, max_size=4),
    data=st.data(),
    final=st.sampled_from(["FILLED", "EXPIRED", "EXPIRED_IN_MATCH"]),
)
def test_market_order_any_delivery_order(fills, data, final) -> None:
    h = Harness()
    total = sum((Decimal(q) for _, q, _ in fills), Decimal(0))
    req = request(str(total) if final == "FILLED" else str(total + Decimal("0.004")), None)
    h.place(req)
    create = h.sent[-1]
    assert create.op is Op.CREATE_ORDER
    cid, oid, qty = create.params["newClientOrderId"], 4242, create.params["quantity"]
    tids = [5000 + i for i in range(len(fills))]
    rows = [
        {"price": p, "qty": q, "commission": n, "commissionAsset": N or "BNB", "tradeId": t}
        for (p, q, (n, N)), t in zip(fills, tids, strict=False)
    ]
    cum = Decimal(0)
    cumq = Decimal(0)
    msgs: list[tuple[str, Any]] = [("report", report(c=cid, x="NEW", X="NEW", oid=oid, q=qty, o="MARKET", p="0"))]
    for i, ((p, q, (n, N)), t) in enumerate(zip(fills, tids, strict=False)):
        cum += Decimal(q)
        cumq += Decimal(q) * Decimal(p)
        last = i == len(fills) - 1
        X = "FILLED" if (last and final == "FILLED") else "PARTIALLY_FILLED"
        msgs.append(
            (
                "report",
                report(
                    c=cid,
                    x="TRADE",
                    X=X,
                    oid=oid,
                    q=qty,
                    o="MARKET",
                    p="0",
                    l=q,
                    L=p,
                    z=str(cum),
                    Z=str(cumq),
                    n=n,
                    N=N or "BNB",
                    t=t,
                    E=T0 + 50 + i,
                ),
            )
        )
    if final != "FILLED":
        x = "EXPIRED" if final == "EXPIRED" else "TRADE_PREVENTION"
        msgs.append(("report", report(c=cid, x=x, X=final, oid=oid, q=qty, o="MARKET", p="0", z=str(cum), Z=str(cumq))))
    full = {
        "symbol": "BTCUSDT",
        "orderId": oid,
        "orderListId": -1,
        "clientOrderId": cid,
        "transactTime": T0 + 5,
        "price": "0.00000000",
        "origQty": qty,
        "executedQty": str(cum),
        "cummulativeQuoteQty": str(cumq),
        "status": final,
        "timeInForce": "GTC",
        "type": "MARKET",
        "side": "BUY",
        "workingTime": T0 + 5,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "fills": rows,
    }
    # What REST would list for this order.
    my_trades = [
        {
            "symbol": "BTCUSDT",
            "id": t,
            "orderId": oid,
            "orderListId": -1,
            "price": p,
            "qty": q,
            "quoteQty": str(Decimal(p) * Decimal(q)),
            "commission": n,
            "commissionAsset": N or "BNB",
            "time": T0 + 50,
            "isBuyer": True,
            "isMaker": False,
            "isBestMatch": True,
        }
        for (p, q, (n, N)), t in zip(fills, tids, strict=False)
    ]
    order = data.draw(st.permutations([*msgs, ("answer", full)]))
    dups = data.draw(st.lists(st.sampled_from(msgs), max_size=3))
    alerts: list[Alert] = []
    for kind, m in list(order) + dups:
        if kind == "answer":
            cmds = h.book.on_result(GatewayResult(create, data=m), h.now)
        else:
            cmds = h.book.on_report(m, h.now)
        alerts += [c for c in cmds if isinstance(c, Alert)]
        h.run(cmds)
        h.now += 3
    # Answer every myTrades request the book made (REST may have been asked for missing fills).
    for _ in range(5):
        pending = [s for s in h.sent if s.op is Op.MY_TRADES]
        if not pending:
            break
        for s in pending:
            h.run(h.book.on_result(GatewayResult(s, data=my_trades), h.now))
        for s in pending:
            h.sent.remove(s)
    assert [s.op for s in h.sent].count(Op.CREATE_ORDER) == 1, [s.op for s in h.sent]
    stored_fills = {(f.trade_id) for f in h.fills()}
    assert stored_fills == set(tids)
    # A fill may be persisted again (idempotent by trade id), never with other figures.
    assert len({(f.trade_id, f.quantity, f.price) for f in h.fills()}) == len(stored_fills)
    trades = h.trades()
    assert len(trades) == 1, trades
    [trade] = trades
    assert trade.filled == cum, (trade.filled, cum)
    assert trade.average_price == cumq / cum, (trade.average_price, cumq / cum)
    want_fees: dict[str, Decimal] = {}
    for _, _, (n, N) in fills:
        if Decimal(n) > 0:
            want_fees[N] = want_fees.get(N, Decimal(0)) + Decimal(n)
    assert dict(trade.fees) == want_fees
    last_order = [o for o in h.stored if isinstance(o, Order)][-1]
    want = {"FILLED": OrderStatus.FILLED, "EXPIRED": OrderStatus.EXPIRED, "EXPIRED_IN_MATCH": OrderStatus.EXPIRED}[
        final
    ]
    assert last_order.status is want, last_order.status
    assert last_order.filled == cum and last_order.quote_filled == cumq
    assert not [a for a in alerts if a.key == "anomaly"], alerts
