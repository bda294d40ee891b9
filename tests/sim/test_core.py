"""Pure core: symbols and filters, balances, matching semantics, commissions, price process."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sim import ExternalPriceSource, RandomWalkPriceSource, SimConfig, SimError, make_symbol_spec
from sim._exchange import Exchange
from tests.sim._helpers import NOW, dec, exchange, order


def _err(exc: pytest.ExceptionInfo[SimError]) -> tuple[int, int, str]:
    return exc.value.status, exc.value.code, exc.value.msg


def test_btcusdt_filters_match_binance() -> None:
    spec = make_symbol_spec("BTCUSDT")
    assert (spec.base, spec.quote) == ("BTC", "USDT")
    assert spec.tick_size == Decimal("0.01")
    assert spec.step_size == Decimal("0.00001")
    assert spec.min_notional == Decimal(5)
    info: dict[str, Any] = spec.exchange_info()
    types = {f["filterType"] for f in info["filters"]}
    assert {
        "PRICE_FILTER",
        "LOT_SIZE",
        "MARKET_LOT_SIZE",
        "NOTIONAL",
        "PERCENT_PRICE_BY_SIDE",
        "MAX_NUM_ORDERS",
    } <= types
    assert {"LIMIT", "MARKET", "LIMIT_MAKER"} <= set(info["orderTypes"])
    assert make_symbol_spec("ETHBTC").step_size == Decimal("0.0001")
    with pytest.raises(ValueError, match="cannot split"):
        make_symbol_spec("FOO")


@pytest.mark.parametrize(
    ("params", "code", "msg"),
    [
        ({"symbol": "NOPE"}, -1121, "Invalid symbol."),
        ({"side": "UP"}, -1117, "Invalid side."),
        ({"type": "WEIRD"}, -1116, "Invalid orderType."),
        ({"price": "65000.001"}, -1013, "Filter failure: PRICE_FILTER"),
        ({"price": "1000000"}, -1013, "Filter failure: PERCENT_PRICE_BY_SIDE"),
        ({"quantity": "0.000011"}, -1013, "Filter failure: LOT_SIZE"),
        ({"quantity": "0.00001", "price": "60000"}, -1013, "Filter failure: NOTIONAL"),
        ({"timeInForce": ""}, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."),
        ({"quantity": "1e3"}, -1100, None),
        ({"newClientOrderId": "bad id!"}, -1100, None),
        ({"quantity": "2"}, -2010, "Account has insufficient balance for requested action."),
        ({"icebergQty": "0.001"}, -1014, "Unsupported order combination."),
        ({"type": "MARKET", "price": ""}, -1106, "Parameter 'timeInForce' sent when not required."),
        ({"newOrderRespType": "BIG"}, -1177, "Invalid newOrderRespType."),
        ({"timeInForce": "GTD"}, -1115, "Invalid timeInForce."),
    ],
)
def test_order_rejections(params: dict[str, str], code: int, msg: str | None) -> None:
    ex = exchange()
    base = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01",
        "price": "60000",
    }
    base.update(params)
    with pytest.raises(SimError) as exc:
        ex.place_order(ex.accounts["main"], {k: v for k, v in base.items() if v != ""}, NOW)
    status, got_code, got_msg = _err(exc)
    assert (status, got_code) == (400, code)
    if msg is not None:
        assert got_msg == msg


def test_limit_gtc_locks_then_cancel_unlocks() -> None:
    ex = exchange()
    acct = ex.accounts["main"]
    res = order(
        ex,
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.01",
        price="60000",
        newClientOrderId="a1",
    )
    assert res.order.status == "NEW" and res.fills == []
    assert acct.bal("USDT").locked == Decimal("600")
    assert acct.bal("USDT").free == Decimal("99400")
    with pytest.raises(SimError, match=r"Duplicate order sent\."):
        order(
            ex,
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            quantity="0.01",
            price="60000",
            newClientOrderId="a1",
        )
    body = ex.cancel_order(acct, "BTCUSDT", None, "a1", "cancel-1", NOW)
    assert body["status"] == "CANCELED" and body["clientOrderId"] == "cancel-1"
    assert body["origClientOrderId"] == "a1"
    assert acct.bal("USDT").locked == 0 and acct.bal("USDT").free == Decimal("100000")
    # After the order is closed its client id may be reused.
    order(
        ex,
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.01",
        price="60000",
        newClientOrderId="a1",
    )
    with pytest.raises(SimError, match=r"Unknown order sent\."):
        ex.cancel_order(acct, "BTCUSDT", 999999, None, None, NOW)
    with pytest.raises(SimError, match=r"Order does not exist\."):
        ex.find_order(acct, "BTCUSDT", 999999, None, NOW, cancel=False)


def test_taker_limit_fills_at_book_prices_and_refunds_lock() -> None:
    ex = exchange()
    acct = ex.accounts["main"]
    ask = ex.markets["BTCUSDT"].best_ask
    res = order(
        ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=str(ask + 100)
    )
    assert res.order.status == "FILLED"
    assert all(t.price <= ask + 100 and not t.is_maker for t in res.fills)
    cost = sum(t.quote_qty for t in res.fills)
    assert acct.bal("USDT").free == Decimal(100000) - cost
    assert acct.bal("USDT").locked == 0
    fee = sum(t.commission for t in res.fills)
    assert fee == Decimal("0.00001000")  # 0.1 % taker in BTC
    assert acct.bal("BTC").free == Decimal(2) + Decimal("0.01") - fee


def test_ioc_fok_and_limit_maker() -> None:
    ex = exchange()
    m = ex.markets["BTCUSDT"]
    ask = m.best_ask
    top = m.level_qty(0)
    ioc = order(
        ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="IOC", quantity=str(top * 2), price=str(ask)
    )
    assert ioc.order.status == "EXPIRED" and ioc.order.executed_qty == top
    assert ioc.order.expiry_reason == "UNFILLED_IOC_QUANTITY_EXPIRED"
    fok = order(
        ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="FOK", quantity="0.01", price=str(m.best_bid - 100)
    )
    assert fok.order.status == "EXPIRED" and fok.fills == []
    assert ex.accounts["main"].bal("USDT").locked == 0
    with pytest.raises(SimError, match=r"Order would immediately match and take\."):
        order(ex, symbol="BTCUSDT", side="SELL", type="LIMIT_MAKER", quantity="0.01", price=str(m.best_bid))
    mk = order(ex, symbol="BTCUSDT", side="SELL", type="LIMIT_MAKER", quantity="0.01", price=str(m.best_ask + 10))
    assert mk.order.status == "NEW" and mk.order.working_time == NOW


def test_market_orders_walk_depth_with_slippage() -> None:
    ex = exchange()
    m = ex.markets["BTCUSDT"]
    res = order(ex, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="1")
    prices = [t.price for t in res.fills]
    assert len(prices) > 1 and prices == sorted(prices) and prices[0] == m.best_ask
    assert res.order.executed_qty == 1 and res.order.status == "FILLED"
    again = order(ex, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    assert again.fills[0].price > prices[0]  # the top level was consumed
    quote = order(ex, symbol="BTCUSDT", side="SELL", type="MARKET", quoteOrderQty="1000")
    assert quote.order.status == "FILLED"
    assert quote.order.cum_quote <= Decimal(1000)
    assert quote.order.orig_qty == quote.order.executed_qty > 0
    with pytest.raises(SimError, match="Filter failure: MARKET_LOT_SIZE"):
        order(ex, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="101")
    with pytest.raises(SimError) as exc:
        order(ex, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="1", price="1")
    assert exc.value.code == -1106


def test_resting_orders_fill_when_market_trades_through() -> None:
    ex = exchange(tick_volume_multiplier=100.0)
    acct = ex.accounts["main"]
    res = order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="64000")
    ex.set_price("BTCUSDT", Decimal("64500"), NOW)
    assert res.order.status == "NEW"
    ex.set_price("BTCUSDT", Decimal("63000"), NOW + 1)
    assert res.order.status == "FILLED"
    trade = ex.trades[-1]
    assert trade.price == Decimal(64000) and trade.is_maker
    assert acct.bal("USDT").locked == 0
    reports = [e for k, _, e in ex.outbox if k == "user" and e.get("e") == "executionReport"]
    assert [r["x"] for r in reports] == ["NEW", "TRADE"]
    assert reports[-1]["m"] is True and reports[-1]["X"] == "FILLED"


def test_manual_partial_fill_and_reports() -> None:
    ex = exchange()
    res = order(
        ex,
        symbol="BTCUSDT",
        side="SELL",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.01",
        price="66000",
        newClientOrderId="s1",
    )
    ex.fill_order(res.order, Decimal("0.004"), NOW)
    assert res.order.status == "PARTIALLY_FILLED"
    ex.fill_order(res.order, None, NOW)
    assert res.order.status == "FILLED"
    with pytest.raises(ValueError, match="not open"):
        ex.fill_order(res.order, None, NOW)
    events = [e for _, _, e in ex.outbox]
    reports = [e for e in events if e["e"] == "executionReport"]
    assert [r["X"] for r in reports] == ["NEW", "PARTIALLY_FILLED", "FILLED"]
    assert [r["z"] for r in reports] == ["0.00000000", "0.00400000", "0.01000000"]
    assert reports[1]["Y"] == "264.00000000" and reports[1]["N"] == "USDT"
    assert reports[1]["n"] == "0.26400000"
    assert reports[0]["w"] is True and reports[2]["w"] is False
    positions = [e for e in events if e["e"] == "outboundAccountPosition"]
    assert positions and positions[-1]["B"]


def test_max_num_orders() -> None:
    ex = Exchange(SimConfig())
    spec = ex.specs["BTCUSDT"]
    object.__setattr__(spec, "max_num_orders", 2)
    for i in range(2):
        order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price=str(60000 + i))
    with pytest.raises(SimError) as exc:
        order(ex, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price="60010")
    assert (exc.value.code, exc.value.msg) == (-2010, "Filter failure: MAX_NUM_ORDERS")


def test_credit_emits_balance_update() -> None:
    ex = exchange()
    ex.credit(ex.accounts["main"], "USDT", Decimal("10.5"), NOW)
    kinds = [e["e"] for _, _, e in ex.outbox]
    assert kinds == ["balanceUpdate", "outboundAccountPosition"]
    assert ex.outbox[0][2]["d"] == "10.50000000"
    with pytest.raises(SimError):
        ex.credit(ex.accounts["main"], "DOGE", Decimal(-1), NOW)


def test_price_sources() -> None:
    a = RandomWalkPriceSource(7)
    b = RandomWalkPriceSource(7)
    pa = pb = Decimal(100)
    for _ in range(50):
        pa, pb = a.next_price("X", pa), b.next_price("X", pb)
    assert pa == pb and pa != Decimal(100)
    ext = ExternalPriceSource()
    assert ext.next_price("X", Decimal(5)) == 5
    ext.push("X", Decimal(7))
    assert ext.next_price("X", Decimal(5)) == 7
    with pytest.raises(ValueError, match="positive"):
        ext.push("X", Decimal(0))
    ex = Exchange(SimConfig(), price_source=ext)
    ext.push("BTCUSDT", Decimal("50000"))
    ex.step(1, NOW)
    assert ex.markets["BTCUSDT"].mid == Decimal(50000)


def _run(seed: int) -> tuple[list[tuple[str, str, str]], dict[str, Decimal]]:
    ex = exchange(seed=seed, tick_volume_multiplier=0.5, volatility=0.002)
    for i in range(10):
        order(
            ex,
            symbol="BTCUSDT",
            side="BUY" if i % 2 else "SELL",
            type="LIMIT",
            timeInForce="GTC",
            quantity="0.01",
            price=str(65000 + (i - 5) * 40),
        )
    order(ex, symbol="ETHUSDT", side="BUY", type="MARKET", quoteOrderQty="500")
    ex.step(200, NOW)
    trades = [(t.symbol, str(t.price), str(t.qty)) for t in ex.trades]
    return trades, {s: m.mid for s, m in ex.markets.items()}


def test_determinism_same_seed_same_fills_and_prices() -> None:
    assert _run(3) == _run(3)
    assert _run(3)[1] != _run(4)[1]
    assert len(_run(3)[0]) > 1


def test_decimal_strings() -> None:
    ex = exchange()
    res = order(ex, symbol="ETHBTC", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1", price="0.05")
    body = res.order.new_order_json("FULL", res.fills)
    assert body["price"] == "0.05000000" and body["origQty"] == "0.10000000"
    assert dec(body["cummulativeQuoteQty"]) == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"symbols": []}, "at least one symbol"),
        ({"symbols": ["BTCUSDT", "btcusdt"]}, "duplicate symbols"),
        ({"symbols": ["FOO"]}, "cannot split"),
        ({"accounts": []}, "at least one account"),
        ({"accounts": [{"name": "a"}, {"name": "b"}]}, "must be unique"),
        ({"accounts": [{"api_key": "bad key"}]}, "api_key must be"),
        ({"accounts": [{"secret": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}]}, "secret is not"),
        ({"accounts": [{"balances": {"BTC": "-1"}}]}, "must not be negative"),
        ({"start_prices": {"ETHUSDT": "0"}, "symbols": ["ETHUSDT"]}, "start price"),
        ({"market_tick_interval_s": -1}, "greater than or equal"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as exc:
        SimConfig(**kwargs)
    assert "AAAA" not in str(exc.value)  # a bad secret is never echoed


def test_public_names() -> None:
    import sim

    assert sorted(sim.__all__) == sorted(
        n for n in dir(sim) if (not n.startswith("_") and n[0].isupper()) or n in ("make_symbol_spec", "wall_clock_ms")
    )
    for name in sim.__all__:
        assert getattr(sim, name).__doc__ or name == "Clock", name


def test_a_simulator_numbering_from_its_clock_never_repeats_an_earlier_runs_ids() -> None:
    # The engine's embedded simulator restarted on the same database numbered orders from 1000 again: the
    # database refused the new run's orders and fills (unique per exchange and pair / symbol), and a filled
    # order stayed "submitted". Numbered from the clock, a later run starts above every id an earlier one gave.
    runs = []
    for start in (NOW, NOW + 60_000):
        ex = Exchange(SimConfig(ids_from_clock=True))
        ex.start_ids_at(start)
        placed = order(ex, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
        external = order(ex, symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01",
                         price="70000")  # fmt: skip
        runs.append((placed.order.order_id, placed.fills[0].trade_id, external.order.client_order_id))
    (first_order, first_trade, first_cid), (second_order, second_trade, second_cid) = runs
    assert second_order > first_order and second_trade > first_trade and second_cid != first_cid
    assert first_order > NOW  # numbered from the clock, not from 1000
    fixed = Exchange(SimConfig())
    assert order(fixed, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01").order.order_id == 1001
