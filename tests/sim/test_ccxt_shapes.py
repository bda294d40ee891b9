"""ccxt parses the simulator's responses into the same structure as Binance's documented examples."""

from __future__ import annotations

from typing import Any

from tests.sim._helpers import make_ccxt, running

DOC_QUERY_ORDER = {
    "symbol": "BTCUSDT", "orderId": 1, "orderListId": -1, "clientOrderId": "myOrder1", "price": "0.1",
    "origQty": "1.0", "executedQty": "0.0", "cummulativeQuoteQty": "0.0", "status": "NEW", "timeInForce": "GTC",
    "type": "LIMIT", "side": "BUY", "stopPrice": "0.0", "icebergQty": "0.0", "time": 1499827319559,
    "updateTime": 1499827319559, "isWorking": True, "workingTime": 1499827319559, "origQuoteOrderQty": "0.000000",
    "selfTradePreventionMode": "NONE",
}  # fmt: skip
DOC_FULL_MARKET = {
    "symbol": "BTCUSDT", "orderId": 28, "orderListId": -1, "clientOrderId": "6gCrw2kRUAF9CvJDGP16IP",
    "transactTime": 1507725176595, "price": "0.00000000", "origQty": "10.00000000", "executedQty": "10.00000000",
    "origQuoteOrderQty": "0.000000", "cummulativeQuoteQty": "10.00000000", "status": "FILLED",
    "timeInForce": "GTC", "type": "MARKET", "side": "SELL", "workingTime": 1507725176595,
    "selfTradePreventionMode": "NONE",
    "fills": [
        {"price": "4000.00000000", "qty": "1.00000000", "commission": "4.00000000", "commissionAsset": "USDT",
         "tradeId": 56},
        {"price": "3999.00000000", "qty": "5.00000000", "commission": "19.99500000", "commissionAsset": "USDT",
         "tradeId": 57},
    ],
}  # fmt: skip
DOC_CANCEL = {
    "symbol": "BTCUSDT", "origClientOrderId": "myOrder1", "orderId": 4, "orderListId": -1,
    "clientOrderId": "cancelMyOrder1", "transactTime": 1684804350068, "price": "2.00000000",
    "origQty": "1.00000000", "executedQty": "0.00000000", "cummulativeQuoteQty": "0.00000000",
    "status": "CANCELED", "timeInForce": "GTC", "type": "LIMIT", "side": "BUY", "selfTradePreventionMode": "NONE",
}  # fmt: skip
DOC_TRADE = {
    "symbol": "BTCUSDT", "id": 28457, "orderId": 100234, "orderListId": -1, "price": "4.00000100",
    "qty": "12.00000000", "quoteQty": "48.000012", "commission": "10.10000000", "commissionAsset": "BNB",
    "time": 1499865549590, "isBuyer": True, "isMaker": False, "isBestMatch": True,
}  # fmt: skip
DOC_TICKER = {
    "symbol": "BTCUSDT", "priceChange": "-94.99999800", "priceChangePercent": "-95.960",
    "weightedAvgPrice": "0.29628482", "prevClosePrice": "0.10002000", "lastPrice": "4.00000200",
    "lastQty": "200.00000000", "bidPrice": "4.00000000", "bidQty": "100.00000000", "askPrice": "4.00000200",
    "askQty": "100.00000000", "openPrice": "99.00000000", "highPrice": "100.00000000", "lowPrice": "0.10000000",
    "volume": "8913.30000000", "quoteVolume": "15.30000000", "openTime": 1499783499040,
    "closeTime": 1499869899040, "firstId": 28385, "lastId": 28460, "count": 76,
}  # fmt: skip

IGNORED = {"info", "trades", "fees", "lastTradeTimestamp", "lastUpdateTimestamp"}


def shape(parsed: dict[str, Any]) -> dict[str, str]:
    """Keys with their value types (None kept apart), ignoring raw info and nested lists."""
    return {k: type(v).__name__ for k, v in parsed.items() if k not in IGNORED}


def test_parsed_structures_match_documented_examples() -> None:
    with running() as sim:
        ex = make_ccxt(sim)
        ex.load_markets()
        market = ex.market("BTC/USDT")
        opened = ex.create_order("BTC/USDT", "limit", "buy", 1, 60000, {"clientOrderId": "shape-1"})
        queried = ex.fetch_order(opened["id"], "BTC/USDT")
        assert shape(queried) == shape(ex.parse_order(DOC_QUERY_ORDER, market))
        sold = ex.create_order("BTC/USDT", "market", "sell", 0.5)
        doc_sold = ex.parse_order(DOC_FULL_MARKET, market)
        assert shape(sold) == shape(doc_sold)
        assert len(sold["trades"]) >= 1 and sold["trades"][0].keys() == doc_sold["trades"][0].keys()
        canceled = ex.cancel_order(opened["id"], "BTC/USDT")
        assert shape(canceled) == shape(ex.parse_order(DOC_CANCEL, market))
        trade = ex.fetch_my_trades("BTC/USDT")[0]
        assert shape(trade) == shape(ex.parse_trade(DOC_TRADE, market))
        ticker = ex.fetch_ticker("BTC/USDT")
        assert shape(ticker) == shape(ex.parse_ticker(DOC_TICKER, market))
        book = ex.fetch_order_book("BTC/USDT", 5)
        assert len(book["bids"]) == 5 and book["nonce"] is not None and book["bids"][0][0] < book["asks"][0][0]
