"""User-data frame parsing: every §7 shape, wrapped and unwrapped, and fuzzing that only BadFrame escapes."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain import Side
from engine.exchange._reports import (
    AccountPosition,
    ApiResponse,
    BadFrame,
    BalanceUpdate,
    ExchangeOrderStatus,
    ExecutionReport,
    ExecutionType,
    ServerShutdown,
    StreamTerminated,
    UnknownEvent,
    parse_user_data,
)

PARTIAL_FILL: dict[str, Any] = {
    "e": "executionReport", "E": 1767225600123, "s": "BTCUSDT", "c": "x-TKT5PX2F1a2b3c4d5e6f7a8b9c0d1e",
    "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "0.01000000", "p": "65000.00000000", "P": "0.00000000",
    "F": "0.00000000", "g": -1, "C": "", "x": "TRADE", "X": "PARTIALLY_FILLED", "r": "NONE", "i": 4293153,
    "l": "0.00400000", "z": "0.00400000", "L": "65000.00000000", "n": "0.00000400", "N": "BTC",
    "T": 1767225600120, "t": 56789012, "I": 8641990, "w": True, "m": True, "M": True, "O": 1767225590001,
    "Z": "260.00000000", "Y": "260.00000000", "Q": "0.00000000", "W": 1767225590001, "V": "EXPIRE_MAKER",
}  # fmt: skip


def test_wrapped_execution_report_from_the_spec() -> None:
    report = parse_user_data(orjson.dumps({"subscriptionId": 0, "event": PARTIAL_FILL}))
    assert isinstance(report, ExecutionReport)
    assert report.subscription_id == 0
    assert report.side is Side.BUY
    assert report.execution_type is ExecutionType.TRADE
    assert report.order_status is ExchangeOrderStatus.PARTIALLY_FILLED
    assert report.last_qty == Decimal("0.004")
    assert report.cum_quote == Decimal("260")
    assert report.commission_asset == "BTC"
    assert report.trade_id == 56789012
    assert report.order_id == 4293153
    assert report.orig_client_order_id is None
    assert report.is_trade
    assert report.is_maker
    assert report.order_client_id == PARTIAL_FILL["c"]


def test_unwrapped_binance_us_frame_and_str_input() -> None:
    report = parse_user_data(orjson.dumps(PARTIAL_FILL).decode())
    assert isinstance(report, ExecutionReport)
    assert report.subscription_id is None


def test_cancel_report_reads_c_and_C_as_binance_means_them() -> None:
    cancel = {
        **PARTIAL_FILL, "x": "CANCELED", "X": "CANCELED", "c": "cancel-req-1", "C": "bx-order",
        "t": -1, "l": "0.00000000", "N": None, "n": "0", "w": False,
    }  # fmt: skip
    report = parse_user_data(orjson.dumps({"subscriptionId": 3, "event": cancel}))
    assert isinstance(report, ExecutionReport)
    assert report.order_client_id == "bx-order"
    assert report.client_order_id == "cancel-req-1"
    assert report.trade_id is None
    assert report.commission_asset is None
    assert not report.is_trade


def test_expired_with_reason() -> None:
    expired = {**PARTIAL_FILL, "x": "EXPIRED", "X": "EXPIRED", "t": -1, "eR": "UNFILLED_IOC_QUANTITY_EXPIRED"}
    report = parse_user_data(orjson.dumps(expired))
    assert isinstance(report, ExecutionReport)
    assert report.expiry_reason == "UNFILLED_IOC_QUANTITY_EXPIRED"


def test_other_events() -> None:
    pos = parse_user_data(
        b'{"subscriptionId":0,"event":{"e":"outboundAccountPosition","E":1,"u":2,'
        b'"B":[{"a":"BTC","f":"0.5","l":"0.1"},{"a":"USDT","f":"100.25","l":"0"}]}}'
    )
    assert isinstance(pos, AccountPosition)
    assert pos.balances[1].free == Decimal("100.25")
    upd = parse_user_data(b'{"e":"balanceUpdate","E":5,"a":"USDT","d":"-10.5","T":6}')
    assert upd == BalanceUpdate(5, "USDT", Decimal("-10.5"), 6)
    term = parse_user_data(b'{"subscriptionId":4,"event":{"e":"eventStreamTerminated","E":9}}')
    assert term == StreamTerminated(9, 4)
    assert parse_user_data(b'{"event":{"e":"serverShutdown","E":10}}') == ServerShutdown(10)
    other = parse_user_data(b'{"subscriptionId":0,"event":{"e":"listStatus","E":11}}')
    assert other == UnknownEvent("listStatus", 11)


def test_api_responses() -> None:
    ok = parse_user_data(b'{"id":"abc","status":200,"result":{"subscriptionId":0},"rateLimits":[]}')
    assert ok == ApiResponse("abc", 200, None, None)
    assert isinstance(ok, ApiResponse)
    assert ok.ok
    bad = parse_user_data(b'{"id":"x","status":401,"error":{"code":-2015,"msg":"Invalid API-key"}}')
    assert isinstance(bad, ApiResponse)
    assert not bad.ok
    assert bad.error_code == -2015


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "not JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"foo":1}', "neither"),
        (b'{"event":[]}', "'event' must be an object"),
        (orjson.dumps({**PARTIAL_FILL, "q": 0.01}), "'q' must be a string"),
        (orjson.dumps({**PARTIAL_FILL, "q": "NaN"}), "out of range"),
        (orjson.dumps({**PARTIAL_FILL, "q": "-1"}), "out of range"),
        (orjson.dumps({**PARTIAL_FILL, "q": "abc"}), "not a decimal"),
        (orjson.dumps({**PARTIAL_FILL, "X": "WEIRD"}), "unknown enum"),
        (orjson.dumps({**PARTIAL_FILL, "i": True}), "'i' must be an integer"),
        (orjson.dumps({k: v for k, v in PARTIAL_FILL.items() if k != "z"}), "'z'"),
    ],
)
def test_malformed_frames_raise_one_clear_error(frame: bytes, reason: str) -> None:
    with pytest.raises(BadFrame, match=reason) as info:
        parse_user_data(frame)
    assert len(info.value.excerpt) <= 160


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_bad_frame(raw: bytes) -> None:
    with contextlib.suppress(BadFrame):
        parse_user_data(raw)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(PARTIAL_FILL)), _json, max_size=10))
def test_mutated_execution_reports_raise_only_bad_frame(overrides: dict[str, Any]) -> None:
    frame = orjson.dumps({"subscriptionId": 0, "event": {**PARTIAL_FILL, **overrides}})
    with contextlib.suppress(BadFrame):
        parse_user_data(frame)
