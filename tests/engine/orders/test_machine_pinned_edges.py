"""Order state machine transitions no other test pinned (found by mutation testing: each test fails on a mutant)."""

from __future__ import annotations

from engine.domain import OrderStatus
from engine.exchange import ExchangeOrderStatus as X
from engine.orders import (
    Acked,
    Anomaly,
    CancelRejected,
    CancelRequested,
    CreateRejected,
    FetchMissingFills,
    FetchOrderStatus,
    StatusChanged,
    Submitted,
    apply,
    replay,
)
from tests.engine.orders.test_machine import CID, OID, D, fill, new_order, status


def test_a_late_fill_completing_a_canceled_order_makes_it_filled() -> None:  # kills O2
    state = replay(new_order("1"), [Submitted(), Acked(OID), fill(1, "0.6"), status(X.CANCELED, "0.6")])
    assert state.status is OrderStatus.CANCELED
    state, effects = apply(state, fill(2, "0.4"))
    assert state.status is OrderStatus.FILLED and state.filled == D("1")
    assert StatusChanged(CID, OrderStatus.CANCELED, OrderStatus.FILLED) in effects


def test_a_late_fill_completing_an_expired_order_makes_it_filled() -> None:  # kills O3
    state = replay(new_order("1"), [Submitted(), fill(1, "0.6"), status(X.EXPIRED, "0.6")])
    state, _ = apply(state, fill(2, "0.4"))
    assert state.status is OrderStatus.FILLED


def test_reconciliation_saying_filled_overrides_expired_and_canceled() -> None:  # kills O4, O33
    for closed in (X.EXPIRED, X.CANCELED):
        state = replay(new_order("1"), [Submitted(), Acked(OID), status(closed, "0")])
        state, effects = apply(state, status(X.FILLED, "1"))
        assert state.status is OrderStatus.FILLED, closed
        assert any(isinstance(e, FetchMissingFills) for e in effects)


def test_a_partial_report_racing_our_cancel_keeps_the_cancel_pending() -> None:  # kills O8
    state = replay(new_order("1"), [Submitted(), Acked(OID), CancelRequested()])
    state, _ = apply(state, status(X.PARTIALLY_FILLED, "0.3"))
    assert state.status is OrderStatus.PENDING_CANCEL


def test_a_failed_cancel_reverts_to_partially_filled_on_the_exchange_count_alone() -> None:  # kills O9
    # the exchange says 0.3 executed; the fills are still being fetched when the cancel fails
    state = replay(new_order("1"), [Submitted(), Acked(OID), CancelRequested(), status(X.PARTIALLY_FILLED, "0.3")])
    assert state.filled == 0 and state.exchange_cum_qty == D("0.3")
    state, _ = apply(state, CancelRejected("busy"))
    assert state.status is OrderStatus.PARTIALLY_FILLED


def test_a_report_whose_fill_is_already_applied_asks_for_no_missing_fills() -> None:  # kills O19
    state = replay(new_order("1"), [Submitted(), Acked(OID), fill(1, "0.4")])
    _, effects = apply(state, status(X.PARTIALLY_FILLED, "0.4"))
    assert not any(isinstance(e, FetchMissingFills) for e in effects), effects


def test_expired_in_match_is_recorded_as_expired() -> None:  # kills O26
    state = replay(new_order("1"), [Submitted(), Acked(OID)])
    state, _ = apply(state, status(X.EXPIRED_IN_MATCH, "0"))
    assert state.status is OrderStatus.EXPIRED


def test_unknown_order_on_a_duplicate_cancel_failure_does_not_look_up_again() -> None:  # kills O27
    state = replay(new_order("1"), [Submitted(), Acked(OID)])
    _, effects = apply(state, CancelRejected("Unknown order sent.", order_gone=True))
    assert not any(isinstance(e, FetchOrderStatus) for e in effects)


def test_exchange_activity_after_a_rejection_is_an_anomaly() -> None:  # kills O34
    state = replay(new_order("1"), [Submitted(), CreateRejected("Filter failure: LOT_SIZE")])
    state, effects = apply(state, status(X.NEW, "0"))
    assert state.status is OrderStatus.REJECTED
    assert any(isinstance(e, Anomaly) for e in effects)


def test_a_repeated_not_created_conclusion_keeps_the_order_resendable() -> None:  # kills O36
    from engine.orders import NotCreated, SubmitOutcomeUnknown

    state = replay(new_order("1"), [Submitted(), SubmitOutcomeUnknown(), NotCreated(), NotCreated()])
    assert state.status is OrderStatus.PENDING_SUBMIT
    state = replay(state, [Submitted(), Acked(OID)])
    assert state.status is OrderStatus.OPEN
