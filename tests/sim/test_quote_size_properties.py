"""Hypothesis properties of ``cross_fills = "quote_size"``: paper orders never get more than the venue showed.

Whatever the venue's frames (prices and sizes, repeated, grown, shrunk) and whatever the paper orders do, the
quantity taken at the venue's best price — by resting orders it reaches and by takers — is at most the first size
shown at that price plus every increase since, until the price changes; an order the venue's quote reaches is left
unfilled only once that size is used up; fills are whole lot steps; funds stay consistent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import SimConfig, SimError
from sim._exchange import Exchange
from tests.sim._helpers import NOW, dec

SYM = "BTCUSDT"
STEP = Decimal("0.00001")
ODD = Decimal("0.000003")  # a venue size need not be whole lot steps of the paper exchange

size = st.tuples(st.integers(0, 40000), st.booleans()).map(lambda t: t[0] * STEP + (ODD if t[1] else 0))
frame = st.tuples(st.just("frame"), st.integers(-6, 6), st.integers(1, 3), size, size)
limit = st.tuples(st.just("limit"), st.sampled_from(["BUY", "SELL"]), st.integers(-7, 9), st.integers(1, 30000))
# a limit resting k USDT inside the venue's opposite best price: the next frames often reach it
passive = st.tuples(st.just("passive"), st.sampled_from(["BUY", "SELL"]), st.integers(1, 4), st.integers(1, 30000))
market = st.tuples(st.just("market"), st.sampled_from(["BUY", "SELL"]), st.integers(1, 30000))
cancel = st.tuples(st.just("cancel"), st.integers(0, 20))
ops = st.tuples(
    frame, st.lists(st.one_of(frame, frame, limit, passive, passive, market, cancel), min_size=4, max_size=60)
)


@dataclass
class Shown:
    """What the venue offered at one side's best price since that price last changed (the model, from the spec)."""

    price: Decimal
    last: Decimal
    offered: Decimal
    taken: Decimal = Decimal(0)

    def show(self, qty: Decimal) -> None:
        self.offered += max(qty - self.last, Decimal(0))  # a larger size offers only the increase
        self.last = qty


def _apply(ex: Exchange, op: tuple[Any, ...], shown: dict[str, Shown]) -> None:
    acct = ex.accounts["main"]
    try:
        if op[0] == "frame":
            _, offset, spread, bid_qty, ask_qty = op
            bid = Decimal(59990 + offset)
            ask = bid + spread
            for side, price, qty in (("bid", bid, bid_qty), ("ask", ask, ask_qty)):
                if side in shown and shown[side].price == price:
                    shown[side].show(qty)
                else:
                    shown[side] = Shown(price, qty, qty)
            ex.set_quote(SYM, bid, ask, NOW, bid_qty=bid_qty, ask_qty=ask_qty)
        elif op[0] in ("limit", "passive"):
            _, side, offset, steps = op
            price = Decimal(59990 + offset)
            if op[0] == "passive":
                price = shown["ask"].price - offset if side == "BUY" else shown["bid"].price + offset
            params = {"symbol": SYM, "side": side, "type": "LIMIT", "timeInForce": "GTC"}
            ex.place_order(acct, params | {"price": str(price), "quantity": str(steps * STEP)}, NOW)
        elif op[0] == "market":
            _, side, steps = op
            ex.place_order(acct, {"symbol": SYM, "side": side, "type": "MARKET", "quantity": str(steps * STEP)}, NOW)
        else:
            open_orders = ex.open_orders(acct, SYM, NOW)
            if open_orders:
                target = open_orders[op[1] % len(open_orders)]
                ex.cancel_order(acct, SYM, target.order_id, None, None, NOW)
    except SimError as err:
        if err.status != 400:  # a clean rejection (funds, filters), never anything else
            raise


def _check_funds(ex: Exchange) -> None:
    reserved: dict[str, Decimal] = defaultdict(Decimal)
    for o in ex.open_by_symbol[SYM].values():
        reserved[o.lock_asset] += o.locked
    for asset, bal in ex.accounts["main"].balances.items():
        assert bal.free >= 0 and bal.locked >= 0, (asset, bal)
        assert bal.locked == reserved.get(asset, Decimal(0)), (asset, bal.locked, reserved)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_paper_fills_never_exceed_what_the_venue_showed(
    first_and_steps: tuple[tuple[Any, ...], list[tuple[Any, ...]]],
) -> None:
    first, rest = first_and_steps
    steps = [first, *rest]  # the venue's first frame, then anything
    ex = Exchange(
        SimConfig(
            symbols=[SYM],
            start_prices={SYM: Decimal(59990)},
            cross_fills="quote_size",
            accounts=[{"balances": {"USDT": Decimal(200000), "BTC": Decimal(3)}}],
        )
    )
    shown: dict[str, Shown] = {}
    seen = 0
    for op in steps:
        _apply(ex, op, shown)
        for t in ex.trades[seen:]:
            o = ex.orders[(t.symbol, t.order_id)]
            assert t.qty > 0 and t.qty % STEP == 0, t  # whole lot steps
            book_side = "ask" if o.side == "BUY" else "bid"
            top = shown.get(book_side)
            if t.is_maker:
                # A resting order fills at its own price, when the venue's opposite best price reaches it.
                assert top is not None and t.price == o.price
                assert top.price <= o.price if o.side == "BUY" else top.price >= o.price
                top.taken += t.qty
            elif top is not None and t.price == top.price:
                top.taken += t.qty  # a taker at the venue's best price draws on the same size
        seen = len(ex.trades)
        for side, top in shown.items():
            assert top.taken <= top.offered, (side, top)
        _check_funds(ex)
        resting = list(ex.open_by_symbol[SYM].values())
        bids = [o.price for o in resting if o.side == "BUY"]
        asks = [o.price for o in resting if o.side == "SELL"]
        if bids and asks:
            assert max(bids) < min(asks)  # user orders never rest crossed
        if op[0] == "frame":
            # An order the venue's quote reaches stays unfilled only if nothing is left on show at that price.
            bt = ex.book_ticker(SYM)
            if any(o.side == "BUY" and o.price >= shown["ask"].price for o in resting):
                assert dec(bt["a"]) != shown["ask"].price or dec(bt["A"]) == 0
            if any(o.side == "SELL" and o.price <= shown["bid"].price for o in resting):
                assert dec(bt["b"]) != shown["bid"].price or dec(bt["B"]) == 0
    for o in ex.orders.values():
        assert sum((t.qty for t in ex.trades if t.order_id == o.order_id), Decimal(0)) == o.executed_qty
