"""Fuzzing the wire: the real user-data and REST parsers against unusual and corrupt payloads."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.exchange import BadFrame, ExecutionReport, parse_user_data
from engine.exchange._reports import _execution_report, _execution_report_fast, _Fields
from engine.venue import WireFormatError, parse_order
from tests.pair._wire_frames import frame

FUZZ = settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            "0",
            "-0",
            "0.00000000",
            "1E-8",
            "1e+3",
            "NaN",
            "Infinity",
            "-1",
            " 1 ",
            "1_0",
            "0x10",
            "99999999999999999999999999999999999",
            "0E-50",
            "BUY",
            "SELL",
            "TRADE",
            "FILLED",
            "EXPIRED_IN_MATCH",
            "TRADE_PREVENTION",
            "REPLACED",
            "PENDING_NEW",
            "BNB",
        ]
    ),
    st.text(max_size=5),
)
json_value = st.recursive(
    json_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3), max_leaves=6
)
KEYS = list(frame("x", "TRADE", "PARTIALLY_FILLED", 1, z="0.004", l="0.004", L="60000", t=5, N="BNB").keys())


@FUZZ
@given(
    muts=st.dictionaries(st.sampled_from([*KEYS, "eR", "v", "A", "W", "zz"]), json_value, max_size=4),
    drop=st.sets(st.sampled_from(KEYS), max_size=3),
    wrapped=st.booleans(),
)
def test_parse_user_data_raises_only_badframe_and_fast_path_matches_checked_path(muts, drop, wrapped) -> None:
    f = frame("x", "TRADE", "PARTIALLY_FILLED", 1, z="0.004", l="0.004", L="60000", t=5, N="BNB")
    f.update(muts)
    for k in drop:
        f.pop(k, None)
    raw = json.dumps({"subscriptionId": 3, "event": f} if wrapped else f).encode()
    try:
        got = parse_user_data(raw)
    except BadFrame:
        got = None
    # The checked path must agree with the fast path on whatever the fast path accepts.
    fast = _execution_report_fast(f, 3 if wrapped else None)
    if fast is not None and f.get("e") == "executionReport":
        assert got == fast
        checked = _execution_report(_Fields(f, raw), 3 if wrapped else None)
        assert checked == fast, (checked, fast)
    if isinstance(got, ExecutionReport):
        for v in (
            got.quantity,
            got.price,
            got.last_qty,
            got.cum_qty,
            got.last_price,
            got.commission,
            got.cum_quote,
            got.last_quote,
        ):
            assert isinstance(v, Decimal) and v.is_finite() and v >= 0


@FUZZ
@given(
    raw=st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | json_value.map(lambda v: json.dumps(v).encode())
)
def test_parse_user_data_any_bytes(raw: bytes) -> None:
    with contextlib.suppress(BadFrame):
        parse_user_data(raw)


def _rest(**over: Any) -> dict[str, Any]:
    d = {
        "symbol": "BTCUSDT",
        "orderId": 5,
        "orderListId": -1,
        "clientOrderId": "abc",
        "transactTime": 1767225600005,
        "price": "0.00000000",
        "origQty": "0.01000000",
        "executedQty": "0.01000000",
        "cummulativeQuoteQty": "600.00000000",
        "status": "FILLED",
        "timeInForce": "GTC",
        "type": "MARKET",
        "side": "BUY",
        "workingTime": 1767225600005,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "fills": [
            {
                "price": "60000.00000000",
                "qty": "0.01000000",
                "commission": "0.00001",
                "commissionAsset": "BNB",
                "tradeId": 9,
            }
        ],
    }
    d.update(over)
    return d


REST_KEYS = list(_rest().keys())


@FUZZ
@given(
    muts=st.dictionaries(st.sampled_from([*REST_KEYS, "updateTime", "time"]), json_value, max_size=3),
    fill_muts=st.dictionaries(
        st.sampled_from(["price", "qty", "commission", "commissionAsset", "tradeId"]), json_value, max_size=2
    ),
)
def test_parse_order_raises_only_wireformaterror_and_never_returns_nonfinite_money(muts, fill_muts) -> None:
    d = _rest(**muts)
    if isinstance(d.get("fills"), list) and d["fills"] and isinstance(d["fills"][0], dict):
        d["fills"][0].update(fill_muts)
    try:
        snap = parse_order(d)
    except WireFormatError:
        return
    for v in (
        snap.price,
        snap.orig_qty,
        snap.executed_qty,
        snap.cum_quote,
        *(x for f in snap.fills for x in (f.price, f.quantity, f.commission)),
    ):
        assert v.is_finite() and v >= 0, (v, d)
