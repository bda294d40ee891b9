"""Hypothesis stateful test of the execution plan against a simulated exchange.

The simulated exchange carries out the plan's commands and answers with arbitrary interleavings of fills
(duplicated too), cancel confirmations, cancel failures, expiries, create failures of every error class,
"not created" resolutions, price moves and timer ticks. Invariants: at most one live order per request at a
time (design.md invariant 1), never more filled than requested, one result exactly, and the result equals
the exchange's truth with the remainder reported (invariant 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine.domain import FallbackKind, OrderStatus, OrderType, TradeId
from engine.exchange import (
    ExchangeError,
    FilterRejected,
    InsufficientBalance,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    RetryLater,
    StopTrading,
)
from engine.execution import (
    Abort,
    Book,
    CancelFailed,
    CancelOrder,
    ExecutionCommand,
    ExecutionConfig,
    ExecutionPlan,
    ExecutionResult,
    LegAcked,
    LegClosed,
    LegFailed,
    LegFilled,
    LegNotCreated,
    Phase,
    PlaceOrder,
    PriceUpdate,
    ReportResult,
    SlippageAction,
    Tick,
)
from tests.engine.execution.conftest_data import BOOK, RULES, request

STEP = RULES.step_size
ERRORS: list[ExchangeError] = [
    RetryLater("busy"),
    RateLimited("slow down", retry_after_s=2),
    InsufficientBalance("no funds"),
    FilterRejected("moved", filter_name="PERCENT_PRICE_BY_SIDE"),
    FilterRejected("size", filter_name="LOT_SIZE"),
    StopTrading("key revoked"),
]


@dataclass
class SimLeg:
    cid: str
    qty: Decimal
    order_type: OrderType
    cum: Decimal = Decimal(0)
    acked: bool = False
    cancel_requested: bool = False
    closed: OrderStatus | None = None


class PlanMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.legs: list[SimLeg] = []
        self.sent_fills: list[LegFilled] = []
        self.delayed_fills: list[LegFilled] = []
        self.trade = 0
        self.results: list[ExecutionResult] = []
        self.aborted = False

    @initialize(
        steps=st.integers(10, 300),
        kind=st.sampled_from(list(FallbackKind)),
        action=st.sampled_from(list(SlippageAction)),
        volatile=st.booleans(),
    )
    def start(self, steps: int, kind: FallbackKind, action: SlippageAction, volatile: bool) -> None:
        self.amount = STEP * steps * 10
        config = ExecutionConfig(limit_timeout_ms=500, fallback=kind, slippage_action=action)
        self.plan, commands = ExecutionPlan.start(
            request(str(self.amount)), RULES, BOOK, self.now, config, volatile=volatile
        )
        self._process(commands)

    # ---- carrying out the plan's commands ---------------------------------------------------------------

    def _live(self) -> list[SimLeg]:
        return [leg for leg in self.legs if leg.closed is None]

    def _process(self, commands: list[ExecutionCommand]) -> None:
        for command in commands:
            if isinstance(command, PlaceOrder):
                assert not self._live(), "a second live order for the same request"
                assert not self.aborted, "an order placed after the caller canceled"
                spec = command.spec
                self.legs.append(SimLeg(spec.client_order_id, spec.quantity, spec.order_type))
            elif isinstance(command, CancelOrder):
                for leg in self.legs:
                    if leg.cid == command.client_order_id and leg.closed is None:
                        leg.cancel_requested = True
            elif isinstance(command, ReportResult):
                self.results.append(command.result)

    def _send(self, event: object) -> None:
        self._process(self.plan.handle(event, self.now))  # type: ignore[arg-type]

    # ---- the exchange -----------------------------------------------------------------------------------

    @precondition(lambda self: bool(self._live()))
    @rule(steps=st.integers(1, 2_000), delayed=st.booleans(), data=st.data())
    def fill(self, steps: int, delayed: bool, data: st.DataObject) -> None:
        leg = data.draw(st.sampled_from(self._live()))
        qty = min(leg.qty - leg.cum, STEP * steps)
        if qty <= 0:
            return
        leg.cum += qty
        self.trade += 1
        event = LegFilled(leg.cid, TradeId(self.trade), qty, Decimal(50_000))  # type: ignore[arg-type]
        if delayed:
            self.delayed_fills.append(event)  # the stream lags: the status may arrive before the fill
        else:
            self.sent_fills.append(event)
            self._send(event)
        if leg.cum == leg.qty:
            leg.closed = OrderStatus.FILLED
            self._send(LegClosed(leg.cid, OrderStatus.FILLED, leg.cum))  # type: ignore[arg-type]

    @precondition(lambda self: bool(self.delayed_fills))
    @rule(data=st.data())
    def deliver_delayed_fill(self, data: st.DataObject) -> None:
        event = self.delayed_fills.pop(data.draw(st.integers(0, len(self.delayed_fills) - 1)))
        self.sent_fills.append(event)
        self._send(event)

    @precondition(lambda self: bool(self.sent_fills))
    @rule(data=st.data())
    def duplicate_fill(self, data: st.DataObject) -> None:
        self._send(data.draw(st.sampled_from(self.sent_fills)))

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        leg = data.draw(st.sampled_from(self._live()))
        leg.acked = True
        self._send(LegAcked(leg.cid))  # type: ignore[arg-type]

    @precondition(lambda self: any(leg.cancel_requested for leg in self._live()))
    @rule(confirm=st.booleans(), transient=st.booleans())
    def answer_cancel(self, confirm: bool, transient: bool) -> None:
        leg = next(leg for leg in self._live() if leg.cancel_requested)
        if confirm:
            leg.closed = OrderStatus.CANCELED
            self._send(LegClosed(leg.cid, OrderStatus.CANCELED, leg.cum))  # type: ignore[arg-type]
        else:
            leg.cancel_requested = False
            error = RetryLater("busy") if transient else OrderNotFound("unknown order")
            self._send(CancelFailed(leg.cid, error))  # type: ignore[arg-type]

    @precondition(lambda self: any(leg.cancel_requested for leg in self._live()))
    @rule(steps=st.integers(1, 2_000))
    def fill_races_the_cancel(self, steps: int) -> None:
        # a trade just before the cancel: the cancel confirmation (with its cumulative quantity) arrives
        # first, the trade report later
        leg = next(leg for leg in self._live() if leg.cancel_requested)
        qty = min(leg.qty - leg.cum, STEP * steps)
        if qty <= 0:
            return
        leg.cum += qty
        self.trade += 1
        self.delayed_fills.append(LegFilled(leg.cid, TradeId(self.trade), qty, Decimal(50_000)))  # type: ignore[arg-type]
        leg.closed = OrderStatus.FILLED if leg.cum == leg.qty else OrderStatus.CANCELED
        self._send(LegClosed(leg.cid, leg.closed, leg.cum))  # type: ignore[arg-type]

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def expire_or_cancel_outside(self, data: st.DataObject) -> None:
        leg = data.draw(st.sampled_from(self._live()))
        how = OrderStatus.EXPIRED if leg.order_type is not OrderType.LIMIT or data.draw(st.booleans()) else (
            OrderStatus.CANCELED)  # fmt: skip
        leg.closed = how
        self._send(LegClosed(leg.cid, how, leg.cum))  # type: ignore[arg-type]

    @precondition(lambda self: any(leg.cum == 0 and not leg.acked for leg in self._live()))
    @rule(error=st.sampled_from(ERRORS))
    def create_fails(self, error: ExchangeError) -> None:
        leg = next(leg for leg in self._live() if leg.cum == 0 and not leg.acked)
        leg.closed = OrderStatus.REJECTED
        self._send(LegFailed(leg.cid, error))  # type: ignore[arg-type]

    @precondition(lambda self: any(leg.cum == 0 and not leg.acked for leg in self._live()))
    @rule()
    def outcome_unknown_then_not_created(self) -> None:
        leg = next(leg for leg in self._live() if leg.cum == 0 and not leg.acked)
        self._send(LegFailed(leg.cid, OutcomeUnknown("timeout")))  # type: ignore[arg-type]
        self.legs.remove(leg)  # it never existed
        self._send(LegNotCreated(leg.cid))  # type: ignore[arg-type]

    @rule()
    def caller_cancels(self) -> None:
        self.aborted = True
        self._send(Abort())

    @rule(dt=st.integers(0, 3_000))
    def tick(self, dt: int) -> None:
        self.now += dt
        self._send(Tick())

    @rule(ask=st.sampled_from([Decimal(50_001), Decimal(50_300), Decimal(52_000)]), volatile=st.booleans())
    def price_moves(self, ask: Decimal, volatile: bool) -> None:
        self._send(PriceUpdate(Book(BOOK.bid, ask, self.now), volatile))

    # ---- invariants -------------------------------------------------------------------------------------

    @invariant()
    def at_most_one_live_order(self) -> None:
        assert len(self._live()) <= 1

    @invariant()
    def never_more_than_requested(self) -> None:
        truth = sum((leg.cum for leg in self.legs), Decimal(0))
        assert truth <= self.amount
        assert self.plan.filled <= truth

    @invariant()
    def one_result_that_matches_the_exchange(self) -> None:
        assert len(self.results) <= 1
        if not self.results:
            assert self.plan.phase is not Phase.DONE
            return
        result = self.results[0]
        assert self.plan.phase is Phase.DONE
        assert not self._live(), "finished with an order still live"
        truth = sum((leg.cum for leg in self.legs), Decimal(0))
        assert result.filled == truth
        assert result.remainder == self.amount - truth
        assert result.detail


TestPlanMachine = PlanMachine.TestCase
TestPlanMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
