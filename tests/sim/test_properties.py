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
    # inside the spread, k ticks from the other side: it rests as the best price and meets the next taker first
    st.tuples(st.just("inside"), st.sampled_from(["BUY", "SELL"]), st.just(""), st.integers(1, 5), st.integers(1, 300)),
    st.tuples(st.just("move"), st.just(""), st.just(""), st.integers(-400, 400), st.just(0)),
    st.tuples(st.just("step"), st.just(""), st.just(""), st.integers(1, 5), st.just(0)),
    st.tuples(st.just("cancel"), st.just(""), st.just(""), st.integers(0, 50), st.just(0)),
    st.tuples(st.just("fill"), st.just(""), st.just(""), st.integers(0, 50), st.integers(1, 3000)),
)


def _apply(ex: Exchange, step: tuple[str, str, str, int, int], now: int, account: str = "main") -> None:
    kind, side, tif, a, b = step
    acct = ex.accounts[account]
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
        elif kind == "inside":
            m = ex.markets[SYMBOL]
            tick = m.spec.tick_size
            price = m.best_ask - a * tick if side == "BUY" else m.best_bid + a * tick
            params = {"symbol": SYMBOL, "side": side, "type": "LIMIT", "timeInForce": "GTC", "quantity": qty}
            ex.place_order(acct, params | {"price": str(price)}, now)
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
        o = ex.orders[(t.symbol, t.order_id)]
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


def _check_account(ex: Exchange, name: str) -> None:
    """Balances never negative; locked funds equal what the account's open orders reserve."""
    reserved: dict[str, Decimal] = defaultdict(Decimal)
    for o in ex.open_by_symbol[SYMBOL].values():
        if o.account == name:
            reserved[o.lock_asset] += o.locked
    for asset, bal in ex.accounts[name].balances.items():
        assert bal.free >= 0 and bal.locked >= 0, (name, asset, bal)
        assert bal.locked == reserved.get(asset, Decimal(0)), (name, asset, bal.locked, reserved)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(op, st.sampled_from(["main", "other"])), min_size=1, max_size=40), st.integers(0, 2**16))
def test_two_accounts_trading_through_one_book(
    steps: list[tuple[tuple[str, str, str, int, int], str]], seed: int
) -> None:
    # Resting user orders are part of the book: a taker meets the other account's orders as Binance would, and its
    # own account's through self-trade prevention (EXPIRE_MAKER). Whatever the interleaving, funds stay consistent,
    # user orders never rest crossed, and a trade between the two is one trade seen once by each side.
    balances = {"USDT": Decimal(500000), "BTC": Decimal(8)}  # enough for many orders to rest at once
    other = {"name": "other", "api_key": "k" * 64, "secret": "s" * 64, "balances": balances}
    ex = Exchange(
        SimConfig(seed=seed, volatility=0.003, tick_volume_multiplier=0.3, accounts=[{"balances": balances}, other])
    )
    for i, (step, account) in enumerate(steps):
        _apply(ex, step, NOW + i, account)
        _check_account(ex, "main")
        _check_account(ex, "other")
        resting = list(ex.open_by_symbol[SYMBOL].values())
        bids = [o.price for o in resting if o.side == "BUY"]
        asks = [o.price for o in resting if o.side == "SELL"]
        if bids and asks:
            assert max(bids) < min(asks), (max(bids), min(asks))
    by_id: dict[int, list[object]] = defaultdict(list)
    for t in ex.trades:
        by_id[t.trade_id].append(t)
    for trade_id, sides in by_id.items():
        assert len(sides) <= 2, trade_id
        if len(sides) == 2:
            maker, taker = sorted(sides, key=lambda t: not t.is_maker)  # type: ignore[attr-defined]
            assert maker.is_maker and not taker.is_maker  # type: ignore[attr-defined]
            assert maker.is_buyer != taker.is_buyer  # type: ignore[attr-defined]
            assert (maker.price, maker.qty) == (taker.price, taker.qty)  # type: ignore[attr-defined]
    for o in ex.orders.values():
        if o.status == "EXPIRED_IN_MATCH":
            assert o.prevented is not None and not o.is_open
