"""Domain types: validation, exact decimals, JSON round trip, pair helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import engine.domain as domain
from engine.domain import (
    ClientOrderId,
    ErrorRecord,
    ExchangeOrderId,
    Fill,
    IndicatorSnapshot,
    Order,
    OrderRequest,
    OrderRole,
    OrderStatus,
    OrderType,
    Pair,
    Priority,
    RequestId,
    Side,
    StrategyContext,
    Symbol,
    TimeInForce,
    Trade,
    TradeId,
    TradeStatus,
    pair_to_symbol,
    symbol_to_pair,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# Binance: up to 8 decimal places for prices/quantities, totals up to ~1e12.
binance_decimals = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("99999999999"), places=8)


def _request(**over: object) -> OrderRequest:
    data: dict[str, object] = {
        "request_id": "r-1",
        "pair": "BTC/USDT",
        "side": "buy",
        "amount": Decimal("0.01"),
        "price": Decimal("50000"),
        "idempotency_key": "k-1",
        "created_at": T0,
    }
    data.update(over)
    return OrderRequest.model_validate(data)


def _order(**over: object) -> Order:
    data: dict[str, object] = {
        "client_order_id": "c-1",
        "request_id": "r-1",
        "pair": "BTC/USDT",
        "side": "buy",
        "order_type": "limit",
        "status": "open",
        "price": Decimal("100"),
        "amount": Decimal("2"),
        "created_at": T0,
        "updated_at": T0,
    }
    data.update(over)
    return Order.model_validate(data)


def test_all_matches_public_names() -> None:
    public = {n for n in dir(domain) if not n.startswith("_")} - {"annotations"}
    modules = {n for n in public if type(getattr(domain, n)).__name__ == "module"}
    assert set(domain.__all__) == public - modules


def test_enum_values_are_stable() -> None:
    assert [s.value for s in OrderStatus] == [
        "pending_submit",
        "submitted",
        "open",
        "partially_filled",
        "pending_cancel",
        "canceled",
        "filled",
        "rejected",
        "expired",
    ]
    assert [p.value for p in sorted(Priority)] == [0, 1, 2, 3]
    assert Priority.CANCEL < Priority.FALLBACK < Priority.EXIT < Priority.ENTRY
    assert TimeInForce.IOC.value == "IOC"
    assert Side.BUY.opposite is Side.SELL
    assert OrderRole.FALLBACK.value == "fallback"


def test_status_terminal_and_open_partition() -> None:
    terminal = {s for s in OrderStatus if s.is_terminal}
    assert terminal == {OrderStatus.CANCELED, OrderStatus.FILLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
    assert all(s.is_open != s.is_terminal for s in OrderStatus)
    assert OrderStatus.SUBMITTED.is_open
    assert set(OrderStatus) == domain.OPEN_STATUSES | domain.TERMINAL_STATUSES


def test_request_valid_and_frozen() -> None:
    req = _request(context={"strategy": "s", "timeframe": "5m", "rsi": "28.5", "extra": {"adx": "21"}})
    assert req.pair == Pair("BTC/USDT")
    assert req.context.indicators() == {"rsi": Decimal("28.5"), "adx": Decimal("21")}
    with pytest.raises(ValidationError):
        setattr(req, "amount", Decimal(1))  # noqa: B010 - the assignment itself is under test


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pair", "BTCUSDT", "BASE/QUOTE"),
        ("pair", "btc/usdt", "BASE/QUOTE"),
        ("amount", Decimal(0), "> 0"),
        ("amount", Decimal("-1"), "> 0"),
        ("amount", "NaN", "finite"),
        ("amount", "Infinity", "finite"),
        ("amount", 0.1, "not float"),
        ("price", Decimal("-5"), "> 0"),
        ("idempotency_key", "", "idempotency_key"),
        ("created_at", datetime(2026, 1, 1), "timezone"),  # noqa: DTZ001 - naive on purpose
        ("limit_timeout_s", Decimal(0), "> 0"),
        ("unknown", 1, "Extra inputs"),
    ],
)
def test_request_rejects_bad_input(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _request(**{field: value})


def test_market_request_needs_no_price_and_limit_maker_is_gtc() -> None:
    assert _request(order_type=OrderType.MARKET, price=None).price is None
    with pytest.raises(ValidationError, match="GTC"):
        _request(order_type=OrderType.LIMIT_MAKER, time_in_force=TimeInForce.IOC)


def test_context_rejects_shadowed_indicator() -> None:
    with pytest.raises(ValidationError, match="named fields"):
        StrategyContext(extra={"rsi": Decimal(1)})


def test_datetimes_normalised_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    req = _request(created_at=datetime(2026, 1, 1, 12, tzinfo=plus2))
    assert req.created_at == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert req.created_at.utcoffset() == timedelta(0)


def test_order_remaining_computed_and_checked() -> None:
    order = _order(filled=Decimal("0.5"))
    assert order.remaining == Decimal("1.5")
    with pytest.raises(ValidationError, match="remaining"):
        _order(filled=Decimal("0.5"), remaining=Decimal(1))
    with pytest.raises(ValidationError, match="exceeds amount"):
        _order(filled=Decimal(3))
    with pytest.raises(ValidationError, match="parent_client_order_id"):
        _order(role=OrderRole.FALLBACK)
    with pytest.raises(ValidationError, match="before created_at"):
        _order(updated_at=T0 - timedelta(seconds=1))


def test_trade_and_records_validate() -> None:
    trade = Trade(
        request_id=RequestId("r"),
        pair=Pair("ETH/BTC"),
        side=Side.SELL,
        requested=Decimal(1),
        filled=Decimal("0.4"),
        status=TradeStatus.PARTIAL,
        created_at=T0,
        remainder=Decimal("0.6"),
    )
    assert trade.remainder == Decimal("0.6")
    assert trade.received == Decimal("0.4")  # a sell: what was sold
    buy = trade.model_copy(update={"side": Side.BUY, "fees": {"ETH": Decimal("0.0004"), "BTC": Decimal("0.1")}})
    assert buy.received == Decimal("0.3996")  # only the base asset's fee comes out of what was bought
    assert buy.model_copy(update={"fees": {"BNB": Decimal("0.01")}}).received == Decimal("0.4")
    with pytest.raises(ValidationError, match="exceeds requested"):
        Trade.model_validate({**trade.model_dump(), "filled": Decimal(2)})  # and a remainder of 0.6 left
    over = Trade.model_validate({**trade.model_dump(), "filled": Decimal(2), "remainder": Decimal(0)})
    assert over.filled == 2  # what the exchange executed, recorded (the engine alerts it): never a crash
    err = ErrorRecord(operation="create_order", exchange_code=-2010, message="insufficient", time=T0)
    assert err.context == {}
    snap = IndicatorSnapshot(request_id=RequestId("r"), pair=Pair("ETH/BTC"), time=T0, values={"rsi": "1"})
    assert snap.values == {"rsi": Decimal(1)}


@settings(max_examples=200, deadline=None)
@given(price=binance_decimals, qty=binance_decimals, fee=binance_decimals)
def test_fill_json_round_trip_is_exact(price: Decimal, qty: Decimal, fee: Decimal) -> None:
    fill = Fill(
        symbol=Symbol("BTCUSDT"),
        pair=Pair("BTC/USDT"),
        trade_id=TradeId(7),
        client_order_id=ClientOrderId("c"),
        exchange_order_id=ExchangeOrderId(9),
        side=Side.BUY,
        price=price,
        quantity=qty,
        quote_quantity=price * qty,
        commission=fee,
        commission_asset="BNB",
        is_maker=True,
        time=T0,
    )
    again = Fill.model_validate_json(fill.model_dump_json())
    assert again == fill
    assert str(again.price) == str(price)


@given(filled=binance_decimals, extra=binance_decimals)
def test_order_json_round_trip(filled: Decimal, extra: Decimal) -> None:
    order = _order(amount=filled + extra, filled=filled, fees={"BNB": extra})
    assert Order.model_validate_json(order.model_dump_json()) == order
    assert order.remaining == extra


@given(
    base=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8),
    quote=st.sampled_from(domain.KNOWN_QUOTES),
)
def test_pair_symbol_round_trip(base: str, quote: str) -> None:
    pair = f"{base}/{quote}"
    symbol = pair_to_symbol(pair)
    assert symbol == base + quote
    # Splitting is ambiguous only when the base itself ends in a longer quote; the known list
    # is tried longest first, so check the stable cases.
    if not any((base + quote).endswith(q) and len(q) > len(quote) for q in domain.KNOWN_QUOTES):
        assert symbol_to_pair(symbol) == pair


def test_symbol_to_pair_cases() -> None:
    assert symbol_to_pair("BTCUSDT") == "BTC/USDT"
    assert symbol_to_pair("ethbtc") == "ETH/BTC"
    assert symbol_to_pair("XY", quotes=("Y",)) == "X/Y"
    with pytest.raises(ValueError, match="no known quote"):
        symbol_to_pair("USDT")
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        pair_to_symbol("BTC-USDT")
