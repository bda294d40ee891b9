"""Fuzzing the wire: sequences of parser-valid execution reports (any x/X, odd quantities, repeated or reused trade ids,
REPLACED, TRADE_PREVENTION) for the engine's own order: the pure book must never raise, and everything it stores
must be a valid record (no NaN, no negative money, filled within amount)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.domain import Fill, Order, Trade
from tests.pair._book_helpers import Harness
from tests.pair._wire_frames import placed, report

FUZZ = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))

qty = st.sampled_from(["0", "0.00000000", "0.001", "0.004", "0.006", "0.01", "0.02", "1E-5", "0.00400000", "9000"])
price = st.sampled_from(["60000", "0.00000001", "60000.00000000", "1E+5", "59000.5"])
rep = st.fixed_dictionaries(
    {
        "x": st.sampled_from(
            ["NEW", "TRADE", "TRADE", "CANCELED", "EXPIRED", "REPLACED", "TRADE_PREVENTION", "REJECTED"]
        ),
        "X": st.sampled_from(
            [
                "NEW",
                "PARTIALLY_FILLED",
                "FILLED",
                "CANCELED",
                "EXPIRED",
                "EXPIRED_IN_MATCH",
                "PENDING_NEW",
                "PENDING_CANCEL",
                "REJECTED",
            ]
        ),
        "l": qty,
        "z": qty,
        "L": price,
        "q": st.sampled_from(["0.01", "0.008", "0.004", "0.02"]),
        "t": st.integers(min_value=1, max_value=6),
        "n": st.sampled_from(["0", "0.00000100", "5"]),
        "N": st.sampled_from(["BNB", "BTC", "USDT"]),
        "c": st.sampled_from(["own", "own", "ui-1", "cxl-1"]),
        "C": st.sampled_from(["", "", "own", "ui-1"]),
    }
)


def _revalidate(item: object) -> None:
    if isinstance(item, (Fill, Order, Trade)):
        type(item).model_validate(item.model_dump())


@FUZZ
@given(seq=st.lists(rep, min_size=1, max_size=8), cancel_at=st.integers(min_value=0, max_value=8))
def test_report_sequences_never_raise_and_store_only_valid_records(seq, cancel_at) -> None:
    h = Harness(limit_timeout_ms=600_000)
    req, cid, oid = placed(h)
    for i, r in enumerate(seq):
        if i == cancel_at:
            commands, _ = h.book.cancel_request(req.request_id, h.now)
            h.run(commands)
        c = cid if r["c"] == "own" else r["c"]
        C = cid if r["C"] == "own" else r["C"]
        is_trade = r["x"] == "TRADE"
        last_qty, L = r["l"], r["L"]
        if is_trade and Decimal(last_qty) <= 0:
            last_qty = "0.001"
        kw = {
            "c": c,
            "C": C,
            "x": r["x"],
            "X": r["X"],
            "oid": oid,
            "q": r["q"],
            "z": r["z"],
            "l": last_qty if is_trade else "0",
            "L": L if is_trade else "0",
            "t": r["t"] if is_trade else -1,
            "n": r["n"] if is_trade else "0",
            "N": r["N"] if is_trade else None,
            "E": h.now + i,
        }
        h.run(h.book.on_report(report(**kw), h.now))
        h.now += 5
        # answer any myTrades request with nothing (REST lagging), any fetch with an error-free snapshot skipped
    for item in h.stored:
        _revalidate(item)
    for leg in h.book._legs.values():
        s = leg.state
        assert s.filled <= s.amount or leg.role.value == "external"
        assert s.quote_filled >= 0 and all(v >= 0 for _, v in s.fees)
