"""-1013 texts name the filter the symbol actually has; PRICE_FILTER and LOT_SIZE grids start at minPrice / minQty."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sim import SimError
from tests.sim._helpers import exchange, order


def _info(
    *filters: dict[str, Any], price_filter: dict[str, Any] | None = None, lot: dict[str, Any] | None = None
) -> dict[str, Any]:
    pf = price_filter or {"minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"}
    ls = lot or {"minQty": "0.001", "maxQty": "9000", "stepSize": "0.001"}
    return {
        "symbol": "ETHUSDT",
        "status": "TRADING",
        "baseAsset": "ETH",
        "quoteAsset": "USDT",
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "filters": [{"filterType": "PRICE_FILTER", **pf}, {"filterType": "LOT_SIZE", **ls}, *filters],
    }


def _limit(info: dict[str, Any], price: str, qty: str, start: str = "100") -> Any:
    ex = exchange(symbols=["ETHUSDT"], symbol_info={"ETHUSDT": info}, start_prices={"ETHUSDT": Decimal(start)})
    return order(ex, symbol="ETHUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity=qty, price=price)


def _rejects(info: dict[str, Any], price: str, qty: str, start: str = "100") -> str:
    with pytest.raises(SimError) as err:
        _limit(info, price, qty, start)
    assert err.value.code == -1013
    return err.value.msg


def test_min_notional_symbol_names_min_notional() -> None:
    info = _info({"filterType": "MIN_NOTIONAL", "minNotional": "10", "applyToMarket": True, "avgPriceMins": 5})
    assert _rejects(info, "99", "0.01") == "Filter failure: MIN_NOTIONAL"
    ex = exchange(symbols=["ETHUSDT"], symbol_info={"ETHUSDT": info}, start_prices={"ETHUSDT": Decimal(100)})
    with pytest.raises(SimError, match=r"-1013 Filter failure: MIN_NOTIONAL$"):
        order(ex, symbol="ETHUSDT", side="BUY", type="MARKET", quoteOrderQty="5")
    notional = _info({"filterType": "NOTIONAL", "minNotional": "10", "maxNotional": "100000"})
    assert _rejects(notional, "99", "0.01") == "Filter failure: NOTIONAL"


def test_percent_price_symbol_names_percent_price() -> None:
    info = _info({"filterType": "PERCENT_PRICE", "multiplierUp": "1.1", "multiplierDown": "0.9", "avgPriceMins": 5})
    assert _rejects(info, "150", "1") == "Filter failure: PERCENT_PRICE"
    by_side = _info(
        {
            "filterType": "PERCENT_PRICE_BY_SIDE",
            "bidMultiplierUp": "1.1",
            "bidMultiplierDown": "0.9",
            "askMultiplierUp": "1.1",
            "askMultiplierDown": "0.9",
        }
    )
    assert _rejects(by_side, "150", "1") == "Filter failure: PERCENT_PRICE_BY_SIDE"


def test_price_grid_starts_at_min_price() -> None:
    info = _info(price_filter={"minPrice": "0.05", "maxPrice": "1000", "tickSize": "0.1"})
    assert _limit(info, "100.05", "1").order.status == "NEW"  # (100.05 - 0.05) % 0.1 == 0
    assert _rejects(info, "100.1", "1") == "Filter failure: PRICE_FILTER"


def test_lot_grid_starts_at_min_qty() -> None:
    info = _info(lot={"minQty": "0.5", "maxQty": "1000", "stepSize": "1"})
    assert _limit(info, "100", "2.5").order.status == "NEW"  # (2.5 - 0.5) % 1 == 0
    assert _rejects(info, "100", "2") == "Filter failure: LOT_SIZE"
