"""Same-side requests of one pair executing at once (`conflict_policy = "parallel"`), as a hypothesis state machine.

Random buys of one pair are placed while others rest; the exchange fills their limits in part or whole (its reports
delivered or lost), limits time out and fall back to market orders, callers cancel, keys are replayed, finished
requests leave memory, and the engine restarts (what was in flight reaching the exchange or not) from what it stored.
After every step: no request ever has more than one live order at the exchange, or more filled than it asked for;
no order belongs to two requests; every fill is stored once, as the exchange made it; each request is answered once
per run of the book. Whenever everything is driven to its end: each request has its own trade, equal to its own
orders' fills and to what the exchange executed for it.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine.domain import ClientOrderId, OrderRequest, RequestId, Side
from engine.gateway import Op
from engine.pair import CancelAhead, Send
from tests.pair._interleaving_helpers import PAIR, PRICE, STEP
from tests.pair._parallel_rig import Driver

_MAX_REQUESTS = 6


class ParallelBook(RuleBasedStateMachine):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.d = Driver()
        self.requests: dict[RequestId, OrderRequest] = {}
        self.ids = itertools.count(1)

    # ---- the caller ----------------------------------------------------------------------------------
    @precondition(lambda self: len(self.requests) < _MAX_REQUESTS)
    @rule(units=st.integers(200, 1000), below=st.integers(10, 40), timeout_s=st.integers(1, 20))
    def place_a_buy(self, units: int, below: int, timeout_s: int) -> None:
        n = next(self.ids)
        req = OrderRequest(
            request_id=RequestId(f"r{n}"), pair=PAIR, side=Side.BUY, amount=units * STEP, price=PRICE - below,
            idempotency_key=f"ladder-{n}", created_at=datetime.fromtimestamp(self.d.now / 1000, tz=UTC),
            limit_timeout_s=Decimal(timeout_s),
        )  # fmt: skip
        self.requests[req.request_id] = req
        self._place(req)
        assert req.request_id in {e.request.request_id for e in self.d.book.active()}, "a buy beside buys starts"

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data())
    def replay_a_key(self, data: st.DataObject) -> None:
        original = data.draw(st.sampled_from(sorted(self.requests.values(), key=lambda r: r.request_id)))
        replay = original.model_copy(update={"request_id": RequestId(f"replay-{next(self.ids)}")})
        orders, creates = len(self.d.db.orders), self._creates_in_flight()
        self._place(replay)
        assert (len(self.d.db.orders), self._creates_in_flight()) == (orders, creates), "a replay sent an order"

    def _place(self, req: OrderRequest) -> None:
        if self.d.book.maybe_seen(req) is not None:
            return  # the actor answers it from the database (the key was used before the restart)
        self.d.place(req)

    @precondition(lambda self: bool(self.d.book.active()))
    @rule(data=st.data())
    def caller_cancels_one(self, data: st.DataObject) -> None:
        execution = data.draw(st.sampled_from(self.d.book.active()))
        others = {e.request.request_id: (list(e.legs), e.canceled) for e in self.d.book.active() if e is not execution}
        commands, _ = self.d.book.cancel_request(execution.request.request_id, self.d.tick())
        sent = [c.request for c in commands if isinstance(c, Send)] + [c.send for c in commands
                                                                        if isinstance(c, CancelAhead)]  # fmt: skip
        assert {r.key for r in sent if r.op is Op.CANCEL_ORDER} <= set(execution.legs), "another request's order"
        self.d.run(commands)
        for rid, before in others.items():
            after = self.d.book.execution(rid)
            assert after is not None and (after.legs, after.canceled) == before, "another request was touched"

    # ---- the exchange --------------------------------------------------------------------------------
    @precondition(lambda self: bool(self.d.outstanding))
    @rule(data=st.data())
    def exchange_answers(self, data: st.DataObject) -> None:
        self.d.answer(data.draw(st.integers(0, len(self.d.outstanding) - 1)))

    @precondition(lambda self: any(o.open for o in self.d.exchange.orders.values()))
    @rule(data=st.data(), share=st.integers(1, 1000), delivered=st.booleans())
    def exchange_fills_a_resting_limit(self, data: st.DataObject, share: int, delivered: bool) -> None:
        cid = data.draw(st.sampled_from(sorted(c for c, o in self.d.exchange.orders.items() if o.open)))
        report = self.d.exchange.fill(cid, share, self.d.tick())
        if delivered:
            self.d.deliver(report)  # else lost: the cancel's answer, a lookup or myTrades finds it

    # ---- time, memory, restarts ----------------------------------------------------------------------
    @precondition(lambda self: bool(self.d.timers))
    @rule(data=st.data())
    def a_timer_fires(self, data: st.DataObject) -> None:
        self.d.fire(data.draw(st.sampled_from(sorted(self.d.timers))))

    @rule()
    def finished_requests_leave_memory(self) -> None:
        self.d.book.forget_finished()

    @rule(data=st.data(), down_ms=st.integers(0, 15_000))
    def the_engine_restarts(self, data: st.DataObject, down_ms: int) -> None:
        executed = [data.draw(st.booleans()) for _ in self.d.outstanding]
        unfinished = {rid for rid in self.d.db.requests if rid not in self.d.db.trades}
        resumed = self.d.restart(executed, down_ms)
        assert resumed == len(unfinished), "every unfinished request is resumed"
        event(f"restart resumed {min(resumed, 3)}{'+' if resumed >= 3 else ''} request(s)")
        assert {e.request.request_id for e in self.d.book.active()} == unfinished

    @rule()
    def everything_runs_to_its_end(self) -> None:
        self.d.drain()
        assert not self.d.book.active()
        db, exchange = self.d.db, self.d.exchange
        for rid in db.requests:
            req = self.requests[rid]
            trade = db.trades.get(rid)
            assert trade is not None, f"{rid} has no trade"
            executed = sum((o.cum for c, o in exchange.orders.items() if db.orders[ClientOrderId(c)].request_id == rid),
                           Decimal(0))  # fmt: skip
            assert trade.filled == db.filled_of(rid) == executed <= req.amount, (rid, trade.filled, executed)
            assert trade.remainder == req.amount - trade.filled
        for cid, order in exchange.orders.items():
            stored = {tid for (c, tid) in db.fills if c == cid}
            assert stored == {t.trade_id for t in order.trades}, f"{cid}: fills stored {stored}"

    def teardown(self) -> None:
        self.everything_runs_to_its_end()

    # ---- invariants ----------------------------------------------------------------------------------
    @invariant()
    def one_live_order_per_request_and_never_more_than_asked(self) -> None:
        db = self.d.db
        live: dict[str, int] = {}
        executed: dict[str, Decimal] = {}
        for cid, order in self.d.exchange.orders.items():
            rid = db.orders[ClientOrderId(cid)].request_id
            live[rid] = live.get(rid, 0) + int(order.open)
            executed[rid] = executed.get(rid, Decimal(0)) + order.cum
        assert all(n <= 1 for n in live.values()), live
        for owner, qty in executed.items():
            assert qty <= self.requests[RequestId(owner)].amount, (owner, qty)
            assert db.filled_of(owner) <= qty

    @invariant()
    def no_order_is_shared_between_requests(self) -> None:
        assert all(len(owners) == 1 for owners in self.d.db.order_owners.values()), self.d.db.order_owners
        seen: set[ClientOrderId] = set()
        for execution in self.d.book.active():
            legs = set(execution.legs)
            assert not legs & seen and len(legs) == len(execution.legs)
            seen |= legs
            for cid in legs:
                leg = self.d.book.leg(cid)
                assert leg is None or leg.request_id == execution.request.request_id

    @invariant()
    def every_fill_is_the_exchanges_and_counted_once(self) -> None:
        for (cid, tid), fill in self.d.db.fills.items():
            truth = {t.trade_id: t.qty for t in self.d.exchange.orders[cid].trades}
            assert truth.get(tid) == fill.quantity, (cid, tid)
        for leg in self.d.book.open_legs():
            assert len(leg.state.trade_ids) == len(leg.state.fills)
            assert leg.state.filled <= leg.state.amount

    @invariant()
    def each_request_is_answered_once(self) -> None:
        assert all(n == 1 for n in self.d.answers.values()), self.d.answers
        # Every report reaches its own request's order: none is taken for an order placed outside (or unknown).
        strays = {"anomaly", "external_order", "adopted_order"}
        assert not [a for a in self.d.alerts if a.key in strays], self.d.alerts

    def _creates_in_flight(self) -> int:
        return sum(r.op is Op.CREATE_ORDER for r in self.d.outstanding)


ParallelBook.TestCase.settings = settings(max_examples=250, stateful_step_count=40, deadline=None)
test_parallel_book = ParallelBook.TestCase
