"""Public market-data REST bodies (pure functions of the exchange state)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import orjson

from sim._errors import SimError, fmt
from sim._exchange import Exchange
from sim._market import SymbolMarket
from sim._params import opt_int

__all__ = ["depth", "exchange_info_parts", "ticker_24hr"]

ZERO = Decimal(0)


def rate_limits_json(exchange: Exchange) -> list[dict[str, object]]:
    """``rateLimits`` of exchangeInfo, from the configured limits."""
    rl = exchange.config.rate_limits
    return [
        {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": rl.request_weight_per_minute,
        },
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": rl.orders_per_10s},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": rl.orders_per_day},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000},
    ]


def exchange_info_parts(exchange: Exchange, symbols: list[str]) -> tuple[bytes, bytes]:
    """exchangeInfo as bytes around ``serverTime`` (prefix, suffix) so the body is built once."""
    head = b'{"timezone":"UTC","serverTime":'
    tail = orjson.dumps(
        {
            "rateLimits": rate_limits_json(exchange),
            "exchangeFilters": [],
            "symbols": [exchange.specs[s].exchange_info() | {"status": exchange.status[s]} for s in symbols],
        }
    )
    return head, b"," + tail[1:]


def info_symbols(exchange: Exchange, params: Mapping[str, str]) -> list[str] | None:
    """Symbols selected by ``symbol`` / ``symbols`` (None → all)."""
    if params.get("symbol"):
        return [exchange.spec(params["symbol"]).symbol]
    if params.get("symbols"):
        try:
            wanted = orjson.loads(params["symbols"])
        except orjson.JSONDecodeError as exc:
            raise SimError(400, -1100, "Illegal characters found in parameter 'symbols'.") from exc
        if not isinstance(wanted, list):
            raise SimError(400, -1100, "Illegal characters found in parameter 'symbols'.")
        return [exchange.spec(str(s)).symbol for s in wanted]
    return None


def depth(exchange: Exchange, params: Mapping[str, str]) -> dict[str, object]:
    """``GET /api/v3/depth``: synthetic levels merged with resting orders."""
    spec = exchange.spec(params.get("symbol"))
    limit = opt_int(params, "limit") or 100
    limit = min(max(limit, 1), 5000)
    m = exchange.markets[spec.symbol]
    sides: dict[str, dict[Decimal, Decimal]] = {"bid": {}, "ask": {}}
    for side in ("bid", "ask"):
        for _, price, qty in m.side_levels(side):
            if qty > 0:
                sides[side][price] = sides[side].get(price, ZERO) + qty
    for o in exchange.open_by_symbol[spec.symbol].values():
        side = "bid" if o.side == "BUY" else "ask"
        sides[side][o.price] = sides[side].get(o.price, ZERO) + o.remaining
    bids = sorted(sides["bid"].items(), key=lambda kv: -kv[0])[:limit]
    asks = sorted(sides["ask"].items(), key=lambda kv: kv[0])[:limit]
    return {
        "lastUpdateId": m.update_id,
        "bids": [[fmt(p), fmt(q)] for p, q in bids],
        "asks": [[fmt(p), fmt(q)] for p, q in asks],
    }


def depth_weight(params: Mapping[str, str]) -> int:
    """Request weight of depth by ``limit``."""
    try:
        limit = int(params.get("limit") or 100)
    except ValueError:
        limit = 100
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def ticker_24hr(m: SymbolMarket, now: int, mini: bool = False) -> dict[str, object]:
    """``GET /api/v3/ticker/24hr`` element (FULL, or MINI)."""
    bid = m.top("bid") or (ZERO, ZERO)
    ask = m.top("ask") or (ZERO, ZERO)
    change = m.last_price - m.open_price
    pct = (change / m.open_price * 100).quantize(Decimal("0.001")) if m.open_price else ZERO
    wavg = m.quote_volume / m.volume if m.volume else m.last_price
    out: dict[str, object] = {"symbol": m.spec.symbol}
    if not mini:
        out.update(
            {
                "priceChange": fmt(change),
                "priceChangePercent": str(pct),
                "weightedAvgPrice": fmt(wavg),
                "prevClosePrice": fmt(m.open_price),
            }
        )
    out["lastPrice"] = fmt(m.last_price)
    if not mini:
        out.update(
            {
                "lastQty": fmt(m.last_qty),
                "bidPrice": fmt(bid[0]),
                "bidQty": fmt(bid[1]),
                "askPrice": fmt(ask[0]),
                "askQty": fmt(ask[1]),
            }
        )
    out.update(
        {
            "openPrice": fmt(m.open_price),
            "highPrice": fmt(m.high),
            "lowPrice": fmt(m.low),
            "volume": fmt(m.volume),
            "quoteVolume": fmt(m.quote_volume),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": m.first_trade_id,
            "lastId": m.last_trade_id,
            "count": m.trade_count,
        }
    )
    return out


def book_ticker_rest(exchange: Exchange, symbol: str) -> dict[str, object]:
    """``GET /api/v3/ticker/bookTicker`` element."""
    bt = exchange.book_ticker(symbol)
    return {"symbol": symbol, "bidPrice": bt["b"], "bidQty": bt["B"], "askPrice": bt["a"], "askQty": bt["A"]}
