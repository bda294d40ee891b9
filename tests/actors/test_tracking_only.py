"""A tracking-only book (a pair halted past the restart budget, or outside the whitelist, run by the root) never
trades: of what it asks for, the root carries out records, events, alerts, timers and read-only lookups, and never
a create; a cancel only for a halted pair (its limits end at their deadline). And
the root's plain settings: where the restart budget and its window come from.

The root's reconciliation mixin as a plain object over fakes at its seams (gateway, persistence, bus, its own
proxy): no actor runs, commands are carried out in the test's thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pykka.messages import ProxyCall

from actors._reconcile import ReconcileMixin
from actors._state import RootSettings
from actors._ticker import Ticker
from actors.gateway import GatewaySettings
from engine.clock import ManualClock
from engine.config import Config
from engine.domain import ClientOrderId, Order, OrderRole, OrderStatus, OrderType, Pair, RequestId, RequestRecord, Side
from engine.gateway import GatewayRequest, GatewayResult, Op
from engine.pair import Command, PairSettings, Persist, Schedule, Send, ShutdownTally, Unschedule, WriteAhead

BTC, DOGE = Pair("BTC/USDT"), Pair("DOGE/USDT")
_NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class _Calls:
    sent: list[GatewayRequest] = field(default_factory=list)
    saved: list[Any] = field(default_factory=list)
    told: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def submit(self, request: GatewayRequest) -> None:
        self.sent.append(request)

    def save_many(self, records: Sequence[Any]) -> None:
        self.saved.extend(records)

    def write_ahead_then(self, record: Any, on_durable: Any, on_failed: Any, companions: Sequence[Any] = ()) -> None:
        self.saved.extend([*companions, record])
        on_durable()


class _Teller:
    """The root's own proxy: every `x.defer(*args)` is recorded."""

    def __init__(self, calls: _Calls) -> None:
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        return SimpleNamespace(defer=lambda *args: self._calls.told.append((name, args)))


class _Root(ReconcileMixin):
    def __init__(self, *, stopping: bool = False) -> None:
        self.calls = _Calls()
        self.gateway = self.calls
        self._store = self.calls
        self._bus = SimpleNamespace(proxy=lambda: SimpleNamespace(publish=SimpleNamespace(defer=lambda _e: None)))
        self._self = _Teller(self.calls)
        self._clock = ManualClock()
        self._stopping = stopping
        self._alerts = lambda _key, _message: None
        self._books: Any = {BTC: None}  # the whitelist (its books are not read here)
        self._outside_own: dict[Pair, frozenset[str]] = {}
        self._ticker = Ticker(self._clock)
        self._timers: dict[str, int] = {}
        self._timer_lock = threading.Lock()
        self._timers_stopped = stopping


def _request(op: Op) -> GatewayRequest:
    return GatewayRequest(op, {"symbol": "BTCUSDT", "origClientOrderId": "c-1"}, key="c-1", pair=BTC)


def _order() -> Order:
    return Order(
        client_order_id=ClientOrderId("c-2"),
        request_id=RequestId("r-1"),
        pair=BTC,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        role=OrderRole.FALLBACK,
        parent_client_order_id=ClientOrderId("c-1"),
        amount=Decimal("0.01"),
        status=OrderStatus.PENDING_SUBMIT,
        created_at=_NOW,
        updated_at=_NOW,
    )


@pytest.mark.parametrize("op", list(Op))
def test_only_lookups_are_sent_and_their_answers_come_back_to_the_root(op: Op) -> None:
    root = _Root()
    book: Any = SimpleNamespace(pair=BTC, cancels_allowed=False)
    root._carry_out(book, [Send(_request(op))])
    if op in (Op.FETCH_ORDER, Op.MY_TRADES, Op.OPEN_ORDERS):
        [sent] = root.calls.sent
        assert sent.op is op and sent.params == _request(op).params and sent.reply_to is not None
        answer = GatewayResult(sent, data={})
        sent.reply_to(answer)
        assert root.calls.told == [("on_tracked_result", (BTC, answer))]
    else:
        assert root.calls.sent == []  # a create, a cancel (or anything not a lookup) never leaves


def test_a_write_ahead_and_a_cancel_are_not_carried_out_records_and_timers_are() -> None:
    root = _Root()
    book: Any = SimpleNamespace(pair=BTC, cancels_allowed=False)
    record = _order()
    commands: list[Command] = [
        Persist(record),
        WriteAhead(_order(), _request(Op.CREATE_ORDER)),
        Send(_request(Op.CANCEL_ORDER)),
        Schedule("fills:c-1", root._clock.now_ms() + 1_000),
    ]
    root._carry_out(book, commands)
    assert root.calls.sent == []
    assert root.calls.saved == [record]
    # The book's timers run on the root (a re-fetch of missing fills): due, they come back to it as a message.
    root._ticker.advance(999)
    assert root.calls.told == []
    root._ticker.advance(1)
    assert root.calls.told == [("on_tracked_timer", (BTC, "fills:c-1"))]


def test_an_unscheduled_timer_of_a_tracking_only_book_never_fires() -> None:
    root = _Root()
    book: Any = SimpleNamespace(pair=BTC, cancels_allowed=False)
    root._carry_out(book, [Schedule("status:c-1", root._clock.now_ms() + 1_000), Unschedule("status:c-1")])
    root._ticker.advance(5_000)
    assert root.calls.told == [] and root._timers == {}


def test_no_timer_is_armed_after_the_timers_stopped() -> None:
    stopped = _Root(stopping=True)
    stopped._carry_out(SimpleNamespace(pair=BTC, cancels_allowed=False), [Schedule("fills:c-1", 10)])  # type: ignore[arg-type]
    stopped._ticker.advance(100)
    assert stopped.calls.told == [] and stopped._timers == {}


def test_nothing_is_sent_after_the_shutdown_drain() -> None:
    root = _Root(stopping=True)
    book: Any = SimpleNamespace(pair=BTC, cancels_allowed=False)
    root._carry_out(book, [Send(_request(Op.FETCH_ORDER)), Send(_request(Op.MY_TRADES))])
    assert root.calls.sent == []


def test_the_book_of_a_pair_outside_the_whitelist_looks_up_its_own_orders_only_and_never_trades() -> None:
    # The engine's own orders from before the whitelist changed are followed to their end like a halted pair's;
    # any other order there (external, another instance's) is not looked up.
    root = _Root()
    root._outside_own[DOGE] = frozenset({"c-1"})
    book: Any = SimpleNamespace(pair=DOGE, cancels_allowed=False)
    other = GatewayRequest(Op.FETCH_ORDER, {"symbol": "DOGEUSDT", "origClientOrderId": "c-9"}, key="c-9", pair=DOGE)
    lookups = [Send(_request(Op.FETCH_ORDER)), Send(_request(Op.MY_TRADES))]
    root._carry_out(book, [*lookups, Send(other), Send(_request(Op.CANCEL_ORDER)), Schedule("fills:c-1", 10)])
    assert [(r.op, r.key) for r in root.calls.sent] == [(Op.FETCH_ORDER, "c-1"), (Op.MY_TRADES, "c-1")]
    root._ticker.advance(100)
    assert root.calls.told == [("on_tracked_timer", (DOGE, "fills:c-1"))]


def _tracked_book(pair: Pair, *cids: str) -> Any:
    orders = [_order().model_copy(update={"pair": pair, "client_order_id": cid}) for cid in cids]
    return SimpleNamespace(pair=pair, reconcilable=lambda tracking_only: orders)


def test_a_round_looks_up_only_the_engines_own_restored_orders_outside_the_whitelist() -> None:
    root = _Root()
    root._outside_own[DOGE] = frozenset({"own-1"})
    halted = _tracked_book(BTC, "own-1", "ext-1")
    outside = _tracked_book(DOGE, "own-1", "adopted-elsewhere")
    never_restored = _tracked_book(Pair("XRP/USDT"), "ext-2")
    # a halted whitelisted pair: every order of its own pair, as before
    assert [o.client_order_id for o in root._tracked_reconcilable(halted)] == ["own-1", "ext-1"]
    assert [o.client_order_id for o in root._tracked_reconcilable(outside)] == ["own-1"]
    assert root._tracked_reconcilable(never_restored) == []  # a pair with nothing restored is not in rounds


def test_the_restart_budget_and_window_come_from_the_configuration_unless_given() -> None:
    def settings(**given: Any) -> RootSettings:
        config = Config.model_validate({"execution": {"restart_budget": "5", "restart_window_s": "0.5"}})
        return RootSettings(config, GatewaySettings(), "sqlite:///x", Path("s"), PairSettings(), **given)

    assert RootSettings(Config(), GatewaySettings(), "sqlite:///x", Path("s"), PairSettings()).restart_limits() == (
        3,
        60_000,
    )
    assert settings().restart_limits() == (5, 500)
    assert settings(restart_budget=1, restart_window_ms=10).restart_limits() == (1, 10)


def test_a_round_deferred_by_a_backlog_goes_again_on_the_next_tight_tick() -> None:
    # A restart's (or a gap's) round that meets a backed-up gateway is not dropped: the 5 s cadence runs it once
    # the backlog is gone; a periodic round is simply the next period's.
    root = _Root()
    queued = [500]
    root.gateway = SimpleNamespace(
        stats=lambda: SimpleNamespace(queued=queued[0], blocked_until_ms=0), submit=root.calls.submit
    )
    root._deferred_rounds = {}
    root._stream_health = {}
    scanned: list[list[Pair]] = []
    root._scan_open_orders = scanned.append  # type: ignore[method-assign]
    root._reconcilable = lambda pair: None  # type: ignore[method-assign]
    assert root._round([BTC], "pair actor BTC/USDT restarted") == 0
    assert root._round([BTC, DOGE], "periodic") == 0
    assert root._deferred_rounds == {"pair actor BTC/USDT restarted": [BTC]} and scanned == []
    root.reconcile_if_unhealthy()  # still backed up: kept
    assert root._deferred_rounds == {"pair actor BTC/USDT restarted": [BTC]} and scanned == []
    queued[0] = 0
    root.reconcile_if_unhealthy()
    assert scanned == [[BTC]] and root._deferred_rounds == {}


def test_a_plans_deadline_is_not_armed_for_a_tracking_only_book() -> None:
    # It would only lead to a cancel or a fallback, which the book never sends: no timer churn on the root.
    root = _Root()
    book: Any = SimpleNamespace(pair=BTC, cancels_allowed=False)
    root._carry_out(book, [Schedule("plan:r-1", root._clock.now_ms() + 10)])
    root._ticker.advance(100)
    assert root.calls.told == [] and root._timers == {}


def test_a_halted_pairs_book_arms_its_plans_deadline_and_sends_its_cancel_but_never_a_create() -> None:
    root = _Root()
    book: Any = SimpleNamespace(pair=BTC, cancels_allowed=True)  # `_track_only` sets it for a halted pair
    root._carry_out(book, [Schedule("plan:r-1", root._clock.now_ms() + 10)])
    root._ticker.advance(10)
    assert root.calls.told == [("on_tracked_timer", (BTC, "plan:r-1"))]
    root._carry_out(book, [Send(_request(Op.CANCEL_ORDER)), WriteAhead(_order(), _request(Op.CREATE_ORDER))])
    assert [r.op for r in root.calls.sent] == [Op.CANCEL_ORDER]
    stopping = _Root(stopping=True)
    stopping._carry_out(book, [Send(_request(Op.CANCEL_ORDER))])
    assert stopping.calls.sent == []  # nothing leaves after the shutdown drain
    # ... except the shutdown's own cancels (`cancel_tracked_for_shutdown`), answered where it says.
    answers: list[GatewayResult] = []
    lookup = Send(_request(Op.FETCH_ORDER))
    assert stopping._carry_out(book, [Send(_request(Op.CANCEL_ORDER)), lookup], answers.append) == 1
    [cancel] = stopping.calls.sent
    assert cancel.op is Op.CANCEL_ORDER and cancel.reply_to == answers.append


def test_a_book_outside_the_whitelist_sends_no_cancel_even_when_the_shutdown_drains() -> None:
    stopping = _Root(stopping=True)
    book: Any = SimpleNamespace(pair=DOGE, cancels_allowed=False)
    assert stopping._carry_out(book, [Send(_request(Op.CANCEL_ORDER))], lambda _r: None) == 0
    assert stopping.calls.sent == []


def test_a_stored_order_lookup_retried_after_the_pair_halted_is_done_by_the_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The pair actor scheduled the retry through its home; past the budget the home sends it to the root, which
    # dropped it (not a book message): the late fill it carried was lost.
    import actors._tracked as reconcile

    root = _Root()
    looked: list[str] = []
    monkeypatch.setattr(reconcile, "stored_view", lambda _store, cid, _t: looked.append(cid) or (None, [], None))
    book: Any = SimpleNamespace(pair=BTC, on_stored=lambda *_args: [], forget_finished=lambda: 0)
    root._outside = {BTC: book}
    root.calls.proxy = None  # type: ignore[attr-defined]  # persistence's proxy: stored_view is replaced above
    command = SimpleNamespace(client_order_id="bx-late", sighting=None)
    root.on_tracked_tell(BTC, ProxyCall(attr_path=("retry_lookup",), args=(command, 2), kwargs={}))
    assert looked == ["bx-late"]


def test_a_callers_cancel_left_in_the_dead_actors_inbox_is_carried_out_once_the_pair_is_halted() -> None:
    # `cancel_order` was told it was taken (`tell_running`); the actor crashed with it queued, past the budget.
    # The root dropped it with the other tells it does not take: the limit rested, and a restart later fell back.
    from actors._pair_home import _Home
    from tests.pair._book_helpers import Harness, order_json, request

    h = Harness()
    req = request()
    h.place(req)
    h.answer(order_json(h.sent[-1], "NEW"))  # the limit rests
    home = _Home.of(h.book)
    dead: Any = object()
    home._actor = dead
    envelope = SimpleNamespace(
        message=ProxyCall(attr_path=("cancel",), args=(req.request_id,), kwargs={}), reply_to=None
    )
    inbox: Any = queue.Queue()
    inbox.put(envelope)
    home.detach(dead, inbox)  # the crashed actor's `on_failure`: the cancel is parked
    root = _Root()
    root._books = {BTC: h.book}
    root._outside, root._held, root._held_overflow = {}, {}, set()
    root._track_only(BTC)  # the restart budget is spent
    [cancel] = root.calls.sent
    assert cancel.op is Op.CANCEL_ORDER and cancel.key == h.sent[0].key
    assert [r.canceled for r in root.calls.saved if isinstance(r, RequestRecord)] == ["canceled by the caller"]


def test_the_roots_stored_order_lookup_is_tried_again_while_the_database_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A late report for an order that left memory, on a tracking-only book: the root logged a failed lookup and
    # dropped the report (nothing else would see the fill), where a pair actor tries for five minutes.
    import actors._tracked as tracked

    root = _Root()
    alerts: list[str] = []
    root._alerts = lambda key, _message: alerts.append(key)
    down = [True]
    looked: list[int] = []

    def stored_view(_store: Any, cid: str, _timeout: float) -> Any:  # float-ok: seconds
        looked.append(len(looked) + 1)
        if down[0]:
            raise RuntimeError("database unavailable")
        return None, [], None

    applied: list[str] = []
    monkeypatch.setattr(tracked, "stored_view", stored_view)
    book: Any = SimpleNamespace(pair=BTC, on_stored=lambda *_args: applied.append("stored") or [],
                                forget_finished=lambda: 0)  # fmt: skip
    root._outside = {BTC: book}
    root.calls.proxy = None  # type: ignore[attr-defined]
    command: Any = SimpleNamespace(client_order_id="bx-late", sighting=None)
    root._lookup_stored(book, command)
    [(name, (pair, retry))] = _due(root, 5_000)
    assert name == "on_tracked_tell" and pair == BTC and retry.args == (command, 2)
    down[0] = False
    root.on_tracked_tell(BTC, retry)
    assert looked == [1, 2] and applied == ["stored"] and alerts == []
    # Past the attempts, the operator is told instead.
    down[0] = True
    root._lookup_stored(book, command, tracked._LOOKUP_ATTEMPTS)
    assert alerts == ["fills_missing"]


def _due(root: _Root, after_ms: int) -> list[tuple[str, tuple[Any, ...]]]:
    """The root's own tells its ticker sends once `after_ms` has passed (and forgets them)."""
    root.calls.told.clear()
    root._ticker.advance(after_ms)
    told, root.calls.told[:] = list(root.calls.told), []
    return told


def test_a_quiet_market_stream_costs_polled_prices_not_reconciliation_rounds() -> None:
    # Quiet (connected, nothing received: `MARKET_QUIET_MS`) loses no order event (those come on the user
    # stream): prices are polled meanwhile, but the 5 s reconciliation cadence is for streams that lose events.
    root = _Root()
    rounds: list[str] = []
    root.reconcile = rounds.append  # type: ignore[method-assign, assignment]
    root._deferred_rounds = {}
    root._stream_health = {"market": SimpleNamespace(state="quiet"), "user": SimpleNamespace(state="connected")}
    root.reconcile_if_unhealthy()
    assert rounds == []
    root._stream_health["market"] = SimpleNamespace(state="reconnecting")
    root.reconcile_if_unhealthy()
    assert rounds == ["stream unhealthy: market"]


def test_the_shutdown_names_the_open_orders_of_the_books_the_root_runs() -> None:
    # The stop's "left open at the exchange: …" line named the pair actors' open orders only: a halted pair's,
    # or the engine's own outside the whitelist, were counted open but not named.
    root = _Root()
    root._outside = {}
    root._outside_own[DOGE] = frozenset({"own-1"})

    def leg(cid: str) -> SimpleNamespace:
        # "h-1" was sent and never answered: its outcome is unknown, named apart (a diff review found it named open).
        status = OrderStatus.SUBMITTED if cid == "h-1" else OrderStatus.OPEN
        return SimpleNamespace(cid=cid, state=SimpleNamespace(status=status), acked=False)

    legs = {pair: [leg(c) for c in cids] for pair, cids in ((BTC, ("h-2", "h-1")), (DOGE, ("own-1", "ext")))}
    for pair in (BTC, DOGE):
        root._outside[pair] = SimpleNamespace(
            pair=pair, open_legs=lambda p=pair: legs[p], shutdown_tally=ShutdownTally
        )  # fmt: skip
    tally = root._tracked_tally()
    assert (tally.open, tally.left_open, tally.unknown) == (3, ("h-1", "h-2", "own-1"), ("h-1",))
    assert tally.summary() == {"canceled": 0, "open": 2, "outcome_unknown": 1}
