"""Symbol rules and pre-trade filters, slippage and volatility guards, risk manager, wallet valuation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain import OrderType, Pair, Side
from engine.execution import (
    Book,
    DefaultRiskManager,
    RefusalReason,
    RiskManager,
    RiskSnapshot,
    SlippageAction,
    SymbolRules,
    VolatilityMonitor,
    check_min_wallet,
    check_slippage,
    value_wallet_in_btc,
)
from tests.engine.execution.conftest_data import BTCUSDT_INFO, RULES, request

D = Decimal


def test_rules_parse_the_filters() -> None:
    assert RULES.tick_size == D("0.01")
    assert RULES.step_size == D("0.00001")
    assert RULES.market_max_qty == D("100")
    assert RULES.min_notional == D("5")
    assert RULES.percent_price is not None
    assert RULES.percent_price.filter_name == "PERCENT_PRICE_BY_SIDE"
    assert "STOP_LOSS_LIMIT" in RULES.order_types


def test_min_notional_and_percent_price_variants() -> None:
    legacy = {**BTCUSDT_INFO, "filters": [
        {"filterType": "MIN_NOTIONAL", "minNotional": "10", "applyToMarket": False, "avgPriceMins": 5},
        {"filterType": "PERCENT_PRICE", "multiplierUp": "1.1", "multiplierDown": "0.9", "avgPriceMins": 5},
    ]}  # fmt: skip
    rules = SymbolRules.from_exchange_info(legacy)
    assert rules.min_notional_filter == "MIN_NOTIONAL"
    assert rules.check(side=Side.BUY, quantity=D("0.0001"), price=D("50000")) is not None
    assert rules.check(side=Side.BUY, quantity=D("1"), price=None, reference_price=D("1")) is None  # market
    bad = rules.check(side=Side.SELL, quantity=D("1"), price=D("120"), reference_price=D("100"))
    assert bad is not None
    assert bad.filter_name == "PERCENT_PRICE"


@pytest.mark.parametrize(
    ("qty", "price", "ref", "expected"),
    [
        ("0.001", "50000.00", None, None),
        ("0.001", "50000.005", None, "PRICE_FILTER"),
        ("0.001", "0.001", None, "PRICE_FILTER"),
        ("0.000015", "50000", None, "LOT_SIZE"),
        ("0.000001", "50000", None, "LOT_SIZE"),
        ("0.00001", "50000", None, "NOTIONAL"),
        ("0.001", "300000", "50000", "PERCENT_PRICE_BY_SIDE"),
        ("101", None, "50000", "MARKET_LOT_SIZE"),
        ("0.00001", None, "50000", "NOTIONAL"),
        ("0.0001", None, None, None),
    ],
)
def test_pre_trade_checks(qty: str, price: str | None, ref: str | None, expected: str | None) -> None:
    violation = RULES.check(
        side=Side.BUY, quantity=D(qty), price=None if price is None else D(price),
        reference_price=None if ref is None else D(ref),
    )  # fmt: skip
    assert (violation.filter_name if violation else None) == expected


@pytest.mark.parametrize(
    ("qty", "price", "dust"),
    [
        ("0.00001", "50000", True),  # below minNotional: too small to send
        ("0.000001", "50000", True),  # below minQty
        ("101", None, False),  # above MARKET_LOT_SIZE maxQty: too big, a filter failure
        ("9001", "50000", False),  # above LOT_SIZE maxQty
        ("200", "50000", False),  # above maxNotional (9,000,000)
    ],
)
def test_only_a_violation_below_a_minimum_is_dust(qty: str, price: str | None, dust: bool) -> None:
    violation = RULES.check(side=Side.BUY, quantity=D(qty), price=None if price is None else D(price),
                            reference_price=D("50000"))  # fmt: skip
    assert violation is not None and violation.is_dust is dust


def test_halted_symbol_is_refused() -> None:
    rules = SymbolRules.from_exchange_info({**BTCUSDT_INFO, "status": "CANCEL_ONLY"})
    violation = rules.check(side=Side.BUY, quantity=D("1"), price=D("1"))
    assert violation is not None
    assert "CANCEL_ONLY" in str(violation)


def test_bad_exchange_info_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="lacks"):
        SymbolRules.from_exchange_info({"symbol": "X"})
    with pytest.raises(ValueError, match="tickSize"):
        SymbolRules.from_exchange_info({**BTCUSDT_INFO, "filters": [{"filterType": "PRICE_FILTER",
                                        "minPrice": "0", "maxPrice": "0", "tickSize": "abc"}]})  # fmt: skip


@given(st.decimals(min_value=D("0.00001"), max_value=D("9000"), places=8))
def test_floor_qty_is_on_the_step_and_never_above(qty: Decimal) -> None:
    out = RULES.floor_qty(qty)
    assert out <= qty
    assert qty - out < RULES.step_size
    assert out % RULES.step_size == 0


@given(st.decimals(min_value=D("0.01"), max_value=D("999999"), places=6), st.sampled_from(list(Side)))
def test_round_price_is_on_tick_and_never_worse(price: Decimal, side: Side) -> None:
    out = RULES.round_price(price, side)
    assert (out - RULES.min_price) % RULES.tick_size == 0
    assert out <= price if side is Side.BUY else out >= price


def test_min_tradable() -> None:
    assert RULES.min_tradable(D("50000")) == D("0.0001")
    assert RULES.min_tradable(D("50000"), market=True) == D("0.0001")


def test_slippage_guard() -> None:
    book = Book(D("100"), D("102"), 0)
    ok = check_slippage(Side.BUY, D("101"), book, D("0.01"), SlippageAction.REFUSE)
    assert ok.allowed
    assert not ok.capped
    refused = check_slippage(Side.BUY, D("100"), book, D("0.01"), SlippageAction.REFUSE)
    assert not refused.allowed
    assert refused.reason is not None
    assert "refused" in refused.reason
    capped = check_slippage(Side.BUY, D("100"), book, D("0.01"), SlippageAction.CAP)
    assert capped.allowed
    assert capped.capped
    assert capped.bound == D("101")
    sell = check_slippage(Side.SELL, D("101"), book, D("0.005"), SlippageAction.REFUSE)
    assert not sell.allowed
    assert sell.bound == D("100.495")
    empty = check_slippage(Side.SELL, D("101"), Book(None, D("1"), 0), D("0.5"), SlippageAction.CAP)
    assert not empty.allowed


def test_volatility_monitor_window() -> None:
    monitor = VolatilityMonitor(window_ms=10_000, threshold=D("0.02"))
    monitor.observe(0, D("100"))
    monitor.observe(5_000, D("101"))
    assert not monitor.triggered(5_000)
    monitor.observe(9_000, D("103"))
    assert monitor.triggered(9_000)
    assert monitor.move(9_000) == D("0.03")
    assert not monitor.triggered(16_000)  # the 100 and 101 left the window
    monitor.observe(1_000, D("1"))  # out of order: ignored
    assert not monitor.triggered(16_000)


def test_default_risk_manager() -> None:
    risk = DefaultRiskManager(
        whitelist=frozenset({Pair("BTC/USDT")}),
        max_notional_per_order={"USDT": D("1000")},
        max_open_orders_per_pair=2,
    )
    assert isinstance(risk, RiskManager)
    snap = RiskSnapshot()
    assert risk.check_trade_allowed(request("0.01", "50000"), snap).allowed
    big = risk.check_trade_allowed(request("1", "50000"), snap)
    assert (big.allowed, big.reason) == (False, RefusalReason.RISK_LIMIT)
    no_price = risk.check_trade_allowed(request("0.01", None, order_type=OrderType.MARKET), snap)
    assert no_price.reason is RefusalReason.RISK_LIMIT
    priced = RiskSnapshot(reference_price=D("50000"))
    assert risk.check_trade_allowed(request("0.01", None, order_type=OrderType.MARKET), priced).allowed
    busy = RiskSnapshot(open_orders_by_pair={Pair("BTC/USDT"): 2})
    assert risk.check_trade_allowed(request(), busy).reason is RefusalReason.RISK_LIMIT
    assert risk.check_trade_allowed(request(), RiskSnapshot(halted=True)).reason is RefusalReason.HALTED
    killed = DefaultRiskManager(kill_switch=True).check_trade_allowed(request(), snap)
    assert killed.reason is RefusalReason.HALTED
    other = DefaultRiskManager(whitelist=frozenset({Pair("ETH/USDT")})).check_trade_allowed(request(), snap)
    assert other.reason is RefusalReason.PAIR_NOT_ALLOWED


def test_wallet_valuation_direct_inverse_and_bridged() -> None:
    prices = {Pair("BTC/USDT"): D("50000"), Pair("ETH/BTC"): D("0.05"), Pair("DOGE/USDT"): D("0.1")}
    wallet = {"BTC": D("0.00002"), "USDT": D("5"), "ETH": D("0.001"), "DOGE": D("100"), "XYZ": D("3"),
              "BNB": D("0")}  # fmt: skip
    valuation = value_wallet_in_btc(wallet, prices)
    assert valuation.by_asset == {"BTC": D("0.00002"), "USDT": D("0.0001"), "ETH": D("0.00005"),
                                  "DOGE": D("0.0002")}  # fmt: skip
    assert valuation.total_btc == D("0.00037")
    assert valuation.unpriced == ("XYZ",)
    assert check_min_wallet(valuation).allowed
    low = check_min_wallet(value_wallet_in_btc({"USDT": D("1"), "XYZ": D("1")}, prices))
    assert (low.allowed, low.reason) == (False, RefusalReason.WALLET_BELOW_MINIMUM)
    assert "XYZ" in low.detail


def test_an_empty_side_of_the_book_is_no_price_not_a_price_of_zero() -> None:
    # bookTicker sends "0.00000000" for an empty side: taken as a price it halves the mid, bounds an IOC sell at
    # half the market and values a remainder at 0.
    from engine.execution import Book, SlippageAction, check_slippage

    book = Book(D("0"), D("50001"), 0)
    assert book.bid is None and book.mid == D("50001")
    assert Book(D("NaN"), D("-1"), 0).mid is None
    decision = check_slippage(Side.SELL, D("50000"), book, D("0.005"), SlippageAction.CAP)
    assert not decision.allowed and decision.reason == "no price on the book to compare with"


def test_a_jump_after_a_quiet_window_is_a_move_from_the_price_still_in_force() -> None:
    from engine.execution import VolatilityMonitor

    monitor = VolatilityMonitor(60_000, D("0.02"))
    monitor.observe(0, D("50000"))
    monitor.observe(61_000, D("52500"))  # no update for 61 s, then +5 %
    assert monitor.move(61_000) == D("0.05") and monitor.triggered(61_000)
    monitor.observe(200_000, D("52500"))
    assert not monitor.triggered(200_000)  # a quiet minute after it: no move within the window
