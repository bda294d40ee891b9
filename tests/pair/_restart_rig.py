"""The pair actor under test over fakes at its seams, and a rig playing the root (not collected)."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pykka

from actors._ticker import Ticker
from actors.pair import PairActor
from engine.api import EngineEvent, PlaceOutcome
from engine.clock import ManualClock
from engine.domain import OrderRequest, Pair
from engine.execution import ExecutionConfig
from engine.gateway import GatewayRequest, Op
from engine.pair import IntakeContext, PairBook, PairSettings
from tests.pair._book_helpers import PAIR, RULES, T0

_WAIT_S = 10.0


class _Gateway:
    def __init__(self) -> None:
        self.sent: list[GatewayRequest] = []
        self.arrived = threading.Condition()

    def submit(self, request: GatewayRequest) -> None:
        with self.arrived:
            self.sent.append(request)
            self.arrived.notify_all()

    def holds_create(self, key: str) -> bool:
        return False  # every create here is answered by the test, or never: none is waiting in a queue

    def withdraw_create(self, key: str) -> None:
        self.withdrawn = [*getattr(self, "withdrawn", []), key]

    def creates(self, count: int) -> list[GatewayRequest]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: self._creates_now() >= count, _WAIT_S)
            return [r for r in self.sent if r.op is Op.CREATE_ORDER]

    def _creates_now(self) -> int:
        return sum(r.op is Op.CREATE_ORDER for r in self.sent)


class _Store:
    proxy: Any = None

    def save_many(self, records: Sequence[Any]) -> None:
        pass

    def write_ahead_then(self, record: Any, on_durable: Any, on_failed: Any, companions: Sequence[Any] = ()) -> None:
        on_durable()


class _HoldablePairActor(PairActor):
    def hold(self, entered: threading.Event, gate: threading.Event) -> None:
        """Keep the actor busy so that messages queue behind this one."""
        entered.set()
        gate.wait(_WAIT_S)


class _Rig:
    """The seams of one pair, and the root's part: a restart over the same book on every crash (if allowed)."""

    def __init__(self, *, restart: bool = True, risk: Any = None) -> None:
        execution = ExecutionConfig(limit_timeout_ms=3_600_000)
        self.book = PairBook(PAIR, RULES, PairSettings(execution=execution), risk=risk)
        self.book.on_price(Decimal("59990"), Decimal("60010"), T0)
        self.ticker = Ticker(ManualClock(T0))
        self.gateway = _Gateway()
        self.events: list[EngineEvent] = []
        self.restart = restart
        self.crashed = threading.Event()
        self.refs: list[pykka.ActorRef[Any]] = []
        self.restarted = threading.Event()
        self.start()

    def start(self) -> pykka.ActorRef[Any]:
        ref = _HoldablePairActor.start(
            self.book,
            gateway=self.gateway,
            store=_Store(),
            ticker=self.ticker,
            clock=self.ticker.clock,
            events=self.events.append,
            alerts=lambda _key, _message: None,
            intake=IntakeContext,
            on_crash=self._crashed,
        )
        self.refs.append(ref)
        return ref

    def _crashed(self, _pair: Pair) -> None:
        # On the dying actor's thread, after its `on_failure` took over what it held (as the root's tell does).
        self.crashed.set()
        if self.restart:
            self.start()
            self.restarted.set()

    @property
    def proxy(self) -> Any:
        return self.refs[-1].proxy()

    def place(self, req: OrderRequest) -> concurrent.futures.Future[PlaceOutcome]:
        future: concurrent.futures.Future[PlaceOutcome] = concurrent.futures.Future()
        self.proxy.place.defer(req, future)
        return future
