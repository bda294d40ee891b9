"""Hypothesis properties of the matching engine (binance-spot simulator issue, "Tests")."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import SimConfig, SimError
from sim._exchange import Exchange
from tests.sim._helpers import NOW

SYMBOL = "BTCUSDT"

op = st.one_of(
    st.tuples(
        st.just("limit"),
        st.sampled_from(["BUY", "SELL"]),
        st.sampled_from(["GTC", "IOC", "FOK"]),
        st.integers(-300, 300),  # price offset from mid in units of 10 USDT
        st.integers(1, 3000),  # quantity in steps of 0.0001
    ),
    st.tuples(
        st.just("market"), st.sampled_from(["BUY", "SELL"]), st.just(""), st.integers(0, 1), st.integers(1, 3000)
    ),
    st.tuples(
        st.just("maker"), st.sampled_from(["BUY", "SELL"]), st.just(""), st.integers(-300, 300), st.integers(1, 3000)
    ),
    st.tuples(st.just("move"), st.just(""), st.just(""), st.integers(-400, 400), st.just(0)),
    st.tuples(st.just("step"), st.just(""), st.just(""), st.integers(1, 5), st.just(0)),
    st.tuples(st.just("cancel"), st.just(""), st.just(""), st.integers(0, 50), st.just(0)),
    st.tuples(st.just("fill"), st.just(""), st.just(""), st.integers(0, 50), st.integers(1, 3000)),
)


def _apply(ex: Exchange, step: tuple[str, str, str, int, int], now: int) -> None:
    kind, side, tif, a, b = step
    acct = ex.accounts["main"]
    mid = ex.markets[SYMBOL].mid
    qty = str(Decimal(b) / 10000)
    try:
        if kind == "limit":
            ex.place_order(
                acct,
                {
                    "symbol": SYMBOL,
                    "side": side,
                    "type": "LIMIT",
                    "timeInForce": tif,
                    "quantity": qty,
                    "price": str(mid + a * 10),
                },
                now,
            )
        elif kind == "maker":
            ex.place_order(
                acct,
                {"symbol": SYMBOL, "side": side, "type": "LIMIT_MAKER", "quantity": qty, "price": str(mid + a * 10)},
                now,
            )
        elif kind == "market":
            if a:
                ex.place_order(
                    acct, {"symbol": SYMBOL, "side": side, "type": "MARKET", "quoteOrderQty": str(b * 10)}, now
                )
            else:
                ex.place_order(acct, {"symbol": SYMBOL, "side": side, "type": "MARKET", "quantity": qty}, now)
        elif kind == "move":
            ex.set_price(SYMBOL, mid + a * 10, now)
        elif kind == "step":
            ex.step(a, now)
        elif kind in ("cancel", "fill"):
            open_orders = ex.open_orders(acct, SYMBOL, now)
            if open_orders:
                target = open_orders[a % len(open_orders)]
                if kind == "cancel":
                    ex.cancel_order(acct, SYMBOL, target.order_id, None, None, now)
                else:
                    ex.fill_order(target, min(target.remaining, Decimal(b) / 10000), now)
    except SimError as err:
        if err.status != 400:  # a clean rejection, never anything else
            raise


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=40), st.integers(0, 2**16))
def test_matching_invariants(steps: list[tuple[str, str, str, int, int]], seed: int) -> None:
    ex = Exchange(
        SimConfig(
            seed=seed,
            volatility=0.003,
            tick_volume_multiplier=0.3,
            accounts=[{"balances": {"USDT": Decimal(20000), "BTC": Decimal("0.3")}}],
        )
    )
    for i, step in enumerate(steps):
        _apply(ex, step, NOW + i)
        acct = ex.accounts["main"]
        # Balances never negative; locked funds equal the sum of what open orders reserve.
        reserved: dict[str, Decimal] = defaultdict(Decimal)
        for o in ex.open_by_symbol[SYMBOL].values():
            reserved[o.lock_asset] += o.locked
        for asset, bal in acct.balances.items():
            assert bal.free >= 0 and bal.locked >= 0, (asset, bal)
            assert bal.locked == reserved.get(asset, Decimal(0)), (asset, bal.locked, reserved)
    fills: dict[int, Decimal] = defaultdict(Decimal)
    for t in ex.trades:
        o = ex.orders[t.order_id]
        fills[o.order_id] += t.qty
        if o.type != "MARKET":  # no trade at a price worse than the limit
            assert t.price <= o.price if o.side == "BUY" else t.price >= o.price
    for o in ex.orders.values():
        assert fills.get(o.order_id, Decimal(0)) == o.executed_qty  # sum of fills = executed quantity
        assert o.executed_qty <= o.orig_qty or o.quote_order_qty > 0
    last_z: dict[int, Decimal] = {}
    for kind, _, ev in ex.outbox:
        if kind == "user" and ev["e"] == "executionReport":
            oid = ev["i"]
            z = Decimal(str(ev["z"]))
            assert isinstance(oid, int)
            assert z >= last_z.get(oid, Decimal(0))  # z monotonic per order
            last_z[oid] = z
