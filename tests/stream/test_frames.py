"""Pure frame handling: probe replies, bookTicker parsing, latest-price coalescing, settings."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.stream import (
    LatestPrices,
    PriceUpdate,
    ProbeReply,
    StreamSettings,
    classify_user_frame,
    parse_book_ticker,
    probe_request,
)
from engine.domain import Symbol
from engine.exchange import ApiResponse, BadFrame, ServerShutdown, StreamTerminated


def test_probe_replies_are_recognised_before_parsing() -> None:
    ok = b'{"id":"bexec-wd-7","status":200,"result":{"userDataStream":true,"serverTime":1},"rateLimits":[]}'
    assert classify_user_frame(ok) == ProbeReply("bexec-wd-7", True, True, 200)
    lost = '{"id":"bexec-wd-8","status":200,"result":{"userDataStream":false}}'
    assert classify_user_frame(lost) == ProbeReply("bexec-wd-8", True, False, 200)
    failed = b'{"id":"bexec-wd-9","status":503,"error":{"code":-1008,"msg":"x"}}'
    assert classify_user_frame(failed) == ProbeReply("bexec-wd-9", False, False, 503)
    assert not classify_user_frame(failed).throttled  # type: ignore[union-attr]
    assert probe_request("bexec-wd-1") == {"id": "bexec-wd-1", "method": "session.status"}


def test_a_rate_limited_probe_reply_says_how_long_to_wait() -> None:
    # The WS API's 429/418 carries data.retryAfter (epoch ms) and data.serverTime: the wait is their difference,
    # both on the exchange's clock.
    limited = b'{"id":"bexec-wd-3","status":429,"error":{"code":-1003,"msg":"Too much request weight used",'
    limited += b'"data":{"serverTime":1000,"retryAfter":41000}},"rateLimits":[]}'
    reply = classify_user_frame(limited)
    assert reply == ProbeReply("bexec-wd-3", False, False, 429, 40_000) and reply.throttled
    banned = b'{"id":"bexec-wd-4","status":418,"error":{"code":-1003,"msg":"banned","data":{"retryAfter":5}}}'
    assert classify_user_frame(banned) == ProbeReply("bexec-wd-4", False, False, 418, None)  # no serverTime
    late = b'{"id":"bexec-wd-5","status":429,"error":{"data":{"serverTime":9,"retryAfter":5}}}'
    assert classify_user_frame(late) == ProbeReply("bexec-wd-5", False, False, 429, 0)


def test_other_frames_go_to_the_engine_parser() -> None:
    assert isinstance(
        classify_user_frame(b'{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":5}}'), StreamTerminated
    )
    assert isinstance(classify_user_frame(b'{"event":{"e":"serverShutdown","E":5}}'), ServerShutdown)
    assert isinstance(classify_user_frame(b'{"id":"other","status":400,"error":{"code":-1,"msg":"m"}}'), ApiResponse)
    with pytest.raises(BadFrame):
        classify_user_frame(b'{"id":"bexec-wd-1" broken')
    with pytest.raises(BadFrame):
        classify_user_frame(b"[1,2]")


def test_book_ticker_wrapped_unwrapped_and_replies() -> None:
    data = {"u": 1, "s": "BTCUSDT", "b": "60000.10", "B": "1", "a": "60000.20", "A": "2"}
    want = PriceUpdate(Symbol("BTCUSDT"), Decimal("60000.10"), Decimal("60000.20"), 9)
    assert parse_book_ticker(orjson.dumps(data), 9) == want
    assert parse_book_ticker(orjson.dumps({"stream": "btcusdt@bookTicker", "data": data}).decode(), 9) == want
    assert parse_book_ticker(b'{"result":null,"id":1}', 9) is None
    assert parse_book_ticker(b'{"error":null,"id":1}', 9) is None  # no error in it: a reply
    for refused in (b'{"code":2,"msg":"Invalid request: unknown variant","id":1}',  # Binance's market streams
                    b'{"error":{"code":2,"msg":"Invalid request"},"id":1}'):  # fmt: skip
        with pytest.raises(BadFrame, match="refused a subscription"):  # not taken for a bookTicker without a symbol
            parse_book_ticker(refused, 9)
    for bad in (b"nope", b"[]", b'{"s":"X","b":1.5,"a":"2"}', b'{"s":"X","b":"NaN","a":"2"}', b'{"b":"1","a":"2"}'):
        with pytest.raises(BadFrame):
            parse_book_ticker(bad, 9)


@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(1, 10**6), st.booleans()), max_size=200))
def test_latest_price_per_symbol_wins(ops: list[tuple[str, int, bool]]) -> None:
    board = LatestPrices()
    latest: dict[str, PriceUpdate] = {}
    delivered: list[PriceUpdate] = []
    drain_scheduled = False
    for symbol, price, drain in ops:
        update = PriceUpdate(Symbol(symbol), Decimal(price), Decimal(price + 1), price)
        if board.offer(update):
            assert not drain_scheduled  # one drain request per batch, not one per update
            drain_scheduled = True
        latest[symbol] = update
        if drain:
            batch = board.drain()
            assert len({u.symbol for u in batch}) == len(batch)  # at most one per symbol
            delivered += batch
            drain_scheduled = False
    delivered += board.drain()
    final: dict[str, PriceUpdate] = {}
    for u in delivered:
        final[u.symbol] = u
    assert final == latest  # nothing lost: the last price of every symbol is delivered
    assert board.offered == len(ops) and board.drained == len(delivered) <= len(ops)


def test_settings_hide_the_secret_and_check_themselves() -> None:
    s = StreamSettings(api_key="KEY-123", api_secret="SECRET-456")
    assert "SECRET-456" not in repr(s) and "KEY-123" not in repr(s)
    assert s.ubwa_exchange == "binance.com" and s.has_user_data
    assert StreamSettings(exchange="binanceus").ubwa_exchange == "binance.us"
    with pytest.raises(ValueError, match="go together"):
        StreamSettings(api_key="k")
    with pytest.raises(ValueError, match="backoff"):
        StreamSettings(min_reconnect_backoff_ms=10, max_reconnect_backoff_ms=5)
    with pytest.raises(ValueError, match="exchange"):
        StreamSettings(exchange="kraken")  # type: ignore[arg-type]


def test_account_events_are_left_unparsed_for_later() -> None:
    from actors.stream._frames import AccountFrame, classify_user_frame
    from engine.exchange import AccountPosition

    event = {"e": "outboundAccountPosition", "E": 1, "u": 1, "B": [{"a": "BTC", "f": "1.5", "l": "0"}]}
    raw = orjson.dumps({"subscriptionId": 12345, "event": event})
    item = classify_user_frame(raw)
    assert isinstance(item, AccountFrame)
    position = item.parse()
    assert isinstance(position, AccountPosition) and position.balances[0].free == Decimal("1.5")
