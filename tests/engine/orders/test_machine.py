"""Order state machine: real-world cases, fill accounting, and the table's shape."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain import ClientOrderId, ExchangeOrderId, OrderStatus, Side, Symbol, TradeId
from engine.exchange import ExchangeOrderStatus, parse_user_data
from engine.exchange._reports import ExecutionReport
from engine.orders import (
    TRANSITIONS,
    Acked,
    Anomaly,
    CancelRejected,
    CancelRequested,
    CreateRejected,
    ExchangeStatus,
    FetchMissingFills,
    FetchOrderStatus,
    FillApplied,
    FillEvent,
    NotCreated,
    OrderState,
    StatusChanged,
    SubmitOutcomeUnknown,
    Submitted,
    apply,
    events_from_report,
    fill_from_my_trade,
    replay,
    status_from_rest_order,
)

CID = ClientOrderId("bx-aaaaaaaaaaaaaaaaaaaaaaaaaa-p")
OID = ExchangeOrderId(42)
D = Decimal


def new_order(amount: str = "1") -> OrderState:
    return OrderState.new(CID, Symbol("BTCUSDT"), Side.BUY, D(amount))


def fill(trade_id: int, qty: str, price: str = "100", fee: str = "0.001") -> FillEvent:
    return FillEvent(TradeId(trade_id), D(qty), D(price), D(qty) * D(price), D(fee), "BNB", False, 1, OID)


def status(x: ExchangeOrderStatus, cum: str) -> ExchangeStatus:
    return ExchangeStatus(x, D(cum), D(cum) * 100, OID)


def test_happy_path_submit_ack_fill() -> None:
    state, effects = apply(new_order(), Submitted())
    assert state.status is OrderStatus.SUBMITTED
    assert effects == (StatusChanged(CID, OrderStatus.PENDING_SUBMIT, OrderStatus.SUBMITTED),)
    state, _ = apply(state, Acked(OID))
    assert (state.status, state.exchange_order_id) == (OrderStatus.OPEN, OID)
    state, effects = apply(state, fill(1, "0.4"))
    assert state.status is OrderStatus.PARTIALLY_FILLED
    assert FillApplied(CID, fill(1, "0.4")) in effects
    state, _ = apply(state, fill(2, "0.6", price="110"))
    assert state.status is OrderStatus.FILLED
    assert state.filled == 1
    assert state.average_price == D("106")
    assert state.fees == (("BNB", D("0.002")),)


def test_fill_before_ack_is_the_ack() -> None:
    state = replay(new_order(), [Submitted(), fill(1, "1")])
    assert state.status is OrderStatus.FILLED
    assert state.exchange_order_id == OID
    state, effects = apply(state, Acked(OID))  # the late REST ack changes nothing
    assert effects == ()
    assert state.status is OrderStatus.FILLED


def test_outcome_unknown_stays_submitted_then_not_created_allows_resend() -> None:
    state = replay(new_order(), [Submitted(), SubmitOutcomeUnknown()])
    assert state.status is OrderStatus.SUBMITTED
    state = replay(state, [NotCreated()])
    assert state.status is OrderStatus.PENDING_SUBMIT
    state = replay(state, [Submitted(), Acked(OID)])
    assert state.status is OrderStatus.OPEN


def test_cancel_rejected_because_already_filled() -> None:
    state = replay(new_order(), [Submitted(), Acked(OID), fill(1, "0.5"), CancelRequested()])
    assert state.status is OrderStatus.PENDING_CANCEL
    state, effects = apply(state, CancelRejected("Unknown order sent.", order_gone=True))
    assert state.status is OrderStatus.PARTIALLY_FILLED
    assert FetchOrderStatus(CID) in effects
    state = replay(state, [status(ExchangeOrderStatus.FILLED, "1")])
    assert state.status is OrderStatus.FILLED
    assert state.missing_qty == D("0.5")


def test_fill_racing_the_cancel_completes_the_order() -> None:
    state = replay(new_order(), [Submitted(), Acked(OID), CancelRequested(), fill(1, "0.3")])
    assert state.status is OrderStatus.PENDING_CANCEL
    state = replay(state, [fill(2, "0.7")])
    assert state.status is OrderStatus.FILLED


def test_cancel_failed_returns_to_open() -> None:
    state = replay(new_order(), [Submitted(), Acked(OID), CancelRequested(), CancelRejected("busy")])
    assert state.status is OrderStatus.OPEN


def test_late_fill_after_cancel_is_applied() -> None:
    state = replay(new_order(), [Submitted(), Acked(OID), status(ExchangeOrderStatus.CANCELED, "0.2")])
    assert state.status is OrderStatus.CANCELED
    assert state.missing_qty == D("0.2")
    state, effects = apply(state, fill(7, "0.2"))
    assert state.status is OrderStatus.CANCELED
    assert state.filled == D("0.2")
    assert state.missing_qty == 0
    assert any(isinstance(e, FillApplied) for e in effects)


def test_cumulative_ahead_asks_for_missing_fills_and_never_invents() -> None:
    state = replay(new_order(), [Submitted(), Acked(OID)])
    state, effects = apply(state, status(ExchangeOrderStatus.PARTIALLY_FILLED, "0.6"))
    assert FetchMissingFills(CID, OID, D("0.6")) in effects
    assert state.filled == 0
    assert state.fills == ()
    assert state.remaining == D("0.4")
    # an older report with a smaller z changes nothing and asks nothing
    state2, effects = apply(state, status(ExchangeOrderStatus.PARTIALLY_FILLED, "0.3"))
    assert state2 == state
    assert effects == ()
    # the fetched fills arrive over REST, then the same trades over the stream: counted once
    state = replay(state, [fill(1, "0.25"), fill(2, "0.35"), fill(1, "0.25"), fill(2, "0.35")])
    assert state.filled == D("0.6")
    assert state.missing_qty == 0


def test_rejected_and_expired() -> None:
    state = replay(new_order(), [Submitted(), CreateRejected("Filter failure: LOT_SIZE")])
    assert state.status is OrderStatus.REJECTED
    state, effects = apply(state, fill(1, "0.1"))
    assert state.filled == 0
    assert any(isinstance(e, Anomaly) for e in effects)
    ioc = replay(new_order(), [Submitted(), fill(1, "0.4"), status(ExchangeOrderStatus.EXPIRED, "0.4")])
    assert ioc.status is OrderStatus.EXPIRED
    assert ioc.filled == D("0.4")


def test_over_fill_is_refused_as_an_anomaly() -> None:
    state = replay(new_order("1"), [Submitted(), fill(1, "0.8")])
    state, effects = apply(state, fill(2, "0.3"))
    assert state.filled == D("0.8")
    assert any(isinstance(e, Anomaly) for e in effects)
    state, effects = apply(state, status(ExchangeOrderStatus.FILLED, "1.5"))
    assert state.exchange_cum_qty == 0  # never taken from a report that contradicts the amount
    assert any(isinstance(e, Anomaly) for e in effects)


@pytest.mark.parametrize("change", [{"price": D(0)}, {"price": D("-1")}, {"commission": D("-0.1")},
                                    {"quote_quantity": D("-5")}])  # fmt: skip
def test_a_fill_with_impossible_numbers_is_refused_as_an_anomaly(change: dict[str, Decimal]) -> None:
    # From myTrades (the stream's parser refuses them): applied, its Fill could not be built or stored, and the
    # pair actor failed on it at every restart.
    state = replay(new_order("1"), [Submitted(), fill(1, "0.2")])
    state, effects = apply(state, dataclasses.replace(fill(2, "0.3"), **change))
    assert state.filled == D("0.2") and len(state.fills) == 1
    assert any(isinstance(e, Anomaly) for e in effects)


def test_invalid_transition_is_ignored_not_raised() -> None:
    state = replay(new_order(), [Submitted(), Acked(OID), fill(1, "1")])
    again, effects = apply(state, CancelRequested())
    assert again == state
    assert effects == ()


def test_table_has_no_exit_from_terminal_except_the_late_fill() -> None:
    terminal = {s for s in OrderStatus if s.is_terminal}
    for (src, _trigger), dst in TRANSITIONS.items():
        if src in terminal and dst != src:
            assert src in (OrderStatus.CANCELED, OrderStatus.EXPIRED)
            assert dst is OrderStatus.FILLED


FULL_REPORT = {
    "e": "executionReport", "E": 2, "s": "BTCUSDT", "c": CID, "S": "BUY", "o": "LIMIT", "f": "GTC",
    "q": "1.00000000", "p": "100.00000000", "P": "0", "F": "0", "g": -1, "C": "", "x": "TRADE",
    "X": "PARTIALLY_FILLED", "r": "NONE", "i": 42, "l": "0.40000000", "z": "0.40000000",
    "L": "100.00000000", "n": "0.00040000", "N": "BTC", "T": 3, "t": 9, "I": 1, "w": True, "m": True,
    "M": True, "O": 1, "Z": "40.00000000", "Y": "40.00000000", "Q": "0",
}  # fmt: skip


def test_stream_report_and_rest_fetch_agree() -> None:
    report = parse_user_data(orjson.dumps({"subscriptionId": 0, "event": FULL_REPORT}))
    assert isinstance(report, ExecutionReport)
    events = events_from_report(report)
    state = replay(new_order(), [Submitted(), *events])
    assert state.status is OrderStatus.PARTIALLY_FILLED
    assert (state.filled, state.missing_qty) == (D("0.4"), 0)
    rest_fill = fill_from_my_trade(
        {
            "symbol": "BTCUSDT",
            "id": 9,
            "orderId": 42,
            "price": "100.00000000",
            "qty": "0.40000000",
            "quoteQty": "40.00000000",
            "commission": "0.00040000",
            "commissionAsset": "BTC",
            "time": 3,
            "isBuyer": True,
            "isMaker": True,
        }
    )
    assert rest_fill == events[0]
    assert replay(state, [rest_fill]) == state
    rest_status = status_from_rest_order(
        {"orderId": 42, "status": "PARTIALLY_FILLED", "executedQty": "0.4", "cummulativeQuoteQty": "40"}
    )
    assert replay(state, [rest_status]) == state


def test_cancel_report_uses_orig_client_id() -> None:
    cancel = {**FULL_REPORT, "x": "CANCELED", "X": "CANCELED", "c": "cancel-id", "C": CID, "t": -1, "l": "0"}
    report = parse_user_data(orjson.dumps(cancel))
    assert isinstance(report, ExecutionReport)
    assert report.order_client_id == CID
    state = replay(new_order(), [Submitted(), CancelRequested(), *events_from_report(report)])
    assert state.status is OrderStatus.CANCELED


def test_evolve_is_dataclasses_replace() -> None:
    import dataclasses

    from engine.orders._machine import _evolve

    state = OrderState.new(ClientOrderId("bx-evolve"), Symbol("BTCUSDT"), Side.BUY, Decimal("0.5"))
    changed = _evolve(state, status=OrderStatus.OPEN, exchange_order_id=ExchangeOrderId(7))
    assert changed == dataclasses.replace(state, status=OrderStatus.OPEN, exchange_order_id=ExchangeOrderId(7))
    assert state.status is OrderStatus.PENDING_SUBMIT  # the original is untouched
    with pytest.raises(TypeError):
        _evolve(state, stauts=OrderStatus.OPEN)


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=60))
@settings(max_examples=200, derandomize=True)
def test_fills_in_any_order_are_applied_once_each_and_kept_sorted(trade_ids: list[int]) -> None:
    # Dedupe is a binary search of the sorted fills (no per-state set): out-of-order and repeated trade ids
    # must still be applied exactly once each.
    state, _ = apply(apply(new_order("100"), Submitted())[0], Acked(OID))
    for tid in trade_ids:
        state, _ = apply(state, fill(tid, "1"))
    unique = sorted(set(trade_ids))
    assert [f.trade_id for f in state.fills] == unique
    assert state.trade_ids == frozenset(unique)
    assert state.filled == len(unique)
    assert all(state.has_trade(TradeId(t)) == (t in unique) for t in range(42))
