"""Hypothesis stateful tests of the order state machine against a simulated exchange order.

The simulated exchange order produces the events Binance would (ack, trades with their cumulative
quantities, cancel, expiry); the rules deliver them late, out of order and more than once, mixed with the
engine's own actions (submit, cancel request, cancel failure).
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine.domain import ClientOrderId, ExchangeOrderId, OrderStatus, Side, Symbol, TradeId
from engine.exchange import ExchangeOrderStatus
from engine.orders import (
    Acked,
    CancelRejected,
    CancelRequested,
    ExchangeStatus,
    FetchMissingFills,
    FillApplied,
    FillEvent,
    OrderEvent,
    OrderState,
    StatusChanged,
    Submitted,
    apply,
    replay,
)

CID = ClientOrderId("bx-bbbbbbbbbbbbbbbbbbbbbbbbbb-p")
OID = ExchangeOrderId(7)
AMOUNT = Decimal("1.000")
STEP = Decimal("0.001")


class ExchangeOrder:
    """What Binance does with the order: the truth the reports describe."""

    def __init__(self) -> None:
        self.cum = Decimal(0)
        self.quote = Decimal(0)
        self.next_trade = 100
        self.final: ExchangeOrderStatus | None = None

    def ack(self) -> list[OrderEvent]:
        return [Acked(OID), ExchangeStatus(ExchangeOrderStatus.NEW, self.cum, self.quote, OID)]

    def trade(self, steps: int, price: int) -> list[OrderEvent]:
        if self.final is not None:
            return []
        qty = min(AMOUNT - self.cum, STEP * steps)
        if qty <= 0:
            return []
        self.cum += qty
        self.quote += qty * price
        self.next_trade += 1
        done = self.cum == AMOUNT
        if done:
            self.final = ExchangeOrderStatus.FILLED
        x = ExchangeOrderStatus.FILLED if done else ExchangeOrderStatus.PARTIALLY_FILLED
        fill = FillEvent(TradeId(self.next_trade), qty, Decimal(price), qty * price, Decimal(0), "BNB", True, 1, OID)
        return [fill, ExchangeStatus(x, self.cum, self.quote, OID)]

    def end(self, how: ExchangeOrderStatus) -> list[OrderEvent]:
        if self.final is not None:
            return []
        self.final = how
        return [ExchangeStatus(how, self.cum, self.quote, OID)]


_ENDS = {
    ExchangeOrderStatus.FILLED: OrderStatus.FILLED,
    ExchangeOrderStatus.CANCELED: OrderStatus.CANCELED,
    ExchangeOrderStatus.EXPIRED: OrderStatus.EXPIRED,
}
TERMINAL_EXITS = {(OrderStatus.CANCELED, OrderStatus.FILLED), (OrderStatus.EXPIRED, OrderStatus.FILLED)}


class OrderMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.exchange = ExchangeOrder()
        self.state = OrderState.new(CID, Symbol("BTCUSDT"), Side.BUY, AMOUNT)
        self.log: list[OrderEvent] = []
        self.outbox: list[OrderEvent] = []  # produced by the exchange, not yet delivered
        self.delivered: list[OrderEvent] = []
        self.acked = False

    def _apply(self, event: OrderEvent) -> None:
        before = self.state
        after, _ = apply(before, event)
        again, effects = apply(after, event)
        assert again == after, f"applying {event} twice changed the state"
        assert not any(isinstance(e, FillApplied | StatusChanged | FetchMissingFills) for e in effects)
        if before.status.is_terminal and after.status is not before.status:
            assert (before.status, after.status) in TERMINAL_EXITS
        self.state = after
        self.log.append(event)

    @rule()
    def submit(self) -> None:
        self._apply(Submitted())

    @precondition(lambda self: not self.acked)
    @rule()
    def exchange_acks(self) -> None:
        self.acked = True
        self.outbox.extend(self.exchange.ack())

    @precondition(lambda self: self.acked)
    @rule(steps=st.integers(1, 600), price=st.integers(90, 110))
    def exchange_trades(self, steps: int, price: int) -> None:
        self.outbox.extend(self.exchange.trade(steps, price))

    @precondition(lambda self: self.acked)
    @rule(how=st.sampled_from([ExchangeOrderStatus.CANCELED, ExchangeOrderStatus.EXPIRED]))
    def exchange_ends(self, how: ExchangeOrderStatus) -> None:
        self.outbox.extend(self.exchange.end(how))

    @precondition(lambda self: bool(self.outbox))
    @rule(data=st.data())
    def deliver_any(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.outbox) - 1))
        event = self.outbox.pop(index)
        self.delivered.append(event)
        self._apply(event)

    @precondition(lambda self: bool(self.delivered))
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        self._apply(data.draw(st.sampled_from(self.delivered)))

    @rule()
    def request_cancel(self) -> None:
        self._apply(CancelRequested())

    @rule(gone=st.booleans())
    def cancel_fails(self, gone: bool) -> None:
        self._apply(CancelRejected("x", order_gone=gone))

    @invariant()
    def filled_never_exceeds_amount(self) -> None:
        assert self.state.filled <= self.state.amount
        assert self.state.exchange_cum_qty <= self.state.amount
        assert self.state.filled <= self.exchange.cum

    @invariant()
    def replaying_the_log_gives_the_same_state(self) -> None:
        fresh = OrderState.new(CID, Symbol("BTCUSDT"), Side.BUY, AMOUNT)
        assert replay(fresh, self.log) == self.state

    @invariant()
    def once_everything_is_delivered_the_books_match_the_exchange(self) -> None:
        if self.outbox or not self.delivered:
            return
        assert self.state.filled == self.exchange.cum
        final = self.exchange.final
        if final is not None:
            # Whatever the engine asked meanwhile (a cancel, a failed cancel), the exchange's end is the order's.
            assert self.state.status is _ENDS[final], (self.state.status, final)
        elif self.acked:
            assert not self.state.status.is_terminal, self.state.status  # still working at the exchange


TestOrderMachine = OrderMachine.TestCase
TestOrderMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@st.composite
def histories(draw: st.DrawFn) -> list[OrderEvent]:
    exchange = ExchangeOrder()
    events = exchange.ack()
    for _ in range(draw(st.integers(0, 6))):
        events += exchange.trade(draw(st.integers(1, 500)), draw(st.integers(90, 110)))
    ending = draw(st.sampled_from([None, ExchangeOrderStatus.CANCELED, ExchangeOrderStatus.EXPIRED]))
    if ending is not None:
        events += exchange.end(ending)
    return events


@settings(max_examples=300, deadline=None)
@given(histories(), st.data())
def test_any_interleaving_with_duplicates_converges(history: list[OrderEvent], data: st.DataObject) -> None:
    start = replay(OrderState.new(CID, Symbol("BTCUSDT"), Side.BUY, AMOUNT), [Submitted()])
    in_order = replay(start, history)
    shuffled = data.draw(st.permutations(history))
    extra = data.draw(st.lists(st.sampled_from(history), max_size=len(history)))
    mixed = data.draw(st.permutations(shuffled + extra))
    assert replay(start, mixed) == in_order
