"""The persistence actor: a thin pykka shell over `PersistenceCore`, sole owner of the DB connection.

Writes arrive by `tell` (`PersistenceHandle.save_*`/`save_many`, or `proxy.save_*` whose future nobody
needs), are batched by size and by the `tick()` the clock sends every batch interval, and are committed
with idempotent upserts. `flush()` is the barrier; `write_ahead(record)` stores a record and answers once it
is durable, in a commit of its own ahead of the batch, and write-aheads queued together share one commit
(group commit). Health goes up through the listener given at construction (tell up, never ask up).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pykka
from loguru import logger
from pykka.typing import ActorMemberMixin, proxy_method

from actors.persistence._core import PersistenceCore
from actors.persistence._types import (
    Durability,
    HealthListener,
    HealthReport,
    NotDurableError,
    PersistenceSettings,
)
from db import (
    FillGap,
    Record,
    RecoveryState,
    children_of,
    fill_gaps,
    fills_of,
    find_errors,
    find_orders,
    find_trades,
    get_order,
    get_trade,
    id_namespace,
    id_tag,
    idempotency_keys,
    load_recovery,
    open_orders,
    request_of,
)
from engine.clock import Clock
from engine.domain import ErrorRecord, Fill, IndicatorSnapshot, Order, RequestRecord, Trade

RECORD_TYPES = (Fill, Order, Trade, ErrorRecord, IndicatorSnapshot, RequestRecord)
"""A record itself is the inbox message that stores it (no wrapper: the tell is the hot path). Every member of
`db.Record`: one left out is not stored, only warned about by pykka as an unexpected message."""
_MAX_GROUP = 64
"""Write-aheads answered by one commit at most (bounds the wait of the first under a steady stream)."""
T = TypeVar("T")


@dataclass(frozen=True)
class Tick:
    """Inbox message: batch interval boundary (sent with `tell` by the clock)."""


@dataclass(frozen=True)
class RecordBatch:
    """Inbox message: several records in acceptance order (what one pair-actor message produced).

    One tell instead of one per record: the inbox, the lock and the wake-up are paid once.
    """

    records: tuple[Record, ...]


class DurableCallback:
    """A write-ahead's answer as calls instead of a future, made on the persistence thread once the commit is
    done (so they must not block): `on_durable()`, or `on_failed(error)` when nothing could be made durable."""

    def __init__(self, on_durable: Callable[[], None], on_failed: Callable[[BaseException], None]) -> None:
        self._on_durable = on_durable
        self._on_failed = on_failed

    def set(self, value: object = None) -> None:
        """Durable."""
        try:
            self._on_durable()
        except Exception:  # noqa: BLE001 - the caller's callback must not take the persistence actor down
            logger.exception("write-ahead callback failed")

    def set_exception(self, exc_info: Any = None) -> None:
        """Not durable."""
        error = (exc_info or sys.exc_info())[1]
        try:
            self._on_failed(error if isinstance(error, BaseException) else RuntimeError("not durable"))
        except Exception:  # noqa: BLE001 - as above
            logger.exception("write-ahead failure callback failed")


@dataclass(frozen=True)
class WriteAheadRecord:
    """Inbox message: store `record` (and `companions`, the records of the same pair message, e.g. its request);
    `done` resolves once they are durable.

    The write-ahead in one message (`save` + `flush` were two messages and two wake-ups per order). The
    reply waits while more messages are queued, so write-aheads of several pairs share one commit. That commit
    holds the write-aheads' own rows only: records told earlier are committed by the next tick (at most one
    batch interval later) or `flush()`, not on the order's critical path.
    """

    record: Record
    done: pykka.Future[Durability] | DurableCallback
    companions: tuple[Record, ...] = ()


class PersistenceActor(pykka.ThreadingActor):
    """Owns the database connection and the spool; see `PersistenceCore` for the behaviour."""

    def __init__(
        self,
        url: str,
        spool_path: Path,
        *,
        listener: HealthListener | None = None,
        settings: PersistenceSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        # Runs in the caller's thread: parse only (a bad URL fails here), no I/O.
        self._core = PersistenceCore(url, spool_path, listener=listener, settings=settings, clock=clock)
        # Each waiting write-ahead with its own records (the record and its companions).
        self._waiting: list[tuple[pykka.Future[Durability] | DurableCallback, tuple[Record, ...]]] = []
        self._urgent: list[Record] = []  # the waiting write-aheads' records, committed ahead of the batch

    def on_start(self) -> None:
        self._core.start()

    def on_stop(self) -> None:
        self._settle()
        self._core.stop()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        logger.error("persistence actor failed error={!r}; stopping after a last flush", exception_value)
        self._core.failed(exception_value)  # first: the root halts new orders, whatever the flush does
        self._settle()
        self._core.stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RECORD_TYPES):
            self._core.accept(message)
        elif isinstance(message, RecordBatch):
            self._core.accept_many(message.records)
        elif isinstance(message, WriteAheadRecord):
            # Now, not at the group's commit: records told after this one (queued while it waits) are newer.
            self._core.supersede((*message.companions, message.record))
            self._urgent.extend(message.companions)
            self._urgent.append(message.record)
            self._waiting.append((message.done, (*message.companions, message.record)))
        elif isinstance(message, Tick):
            self._settle()
            self._core.tick()
        else:
            return super().on_receive(message)
        # Group commit: a write-ahead waits only while the inbox has more to take (another pair's
        # write-ahead, records), then one commit answers them all. The tick bounds the wait.
        if self._waiting and (self.actor_inbox.empty() or len(self._waiting) >= _MAX_GROUP):
            self._settle()
        return None

    def _settle(self) -> None:
        """Make the waiting write-aheads' records durable (in a commit of their own) and answer them."""
        waiting, self._waiting = self._waiting, []
        urgent, self._urgent = self._urgent, []
        if not waiting:
            return
        try:
            durability = self._core.commit_now(urgent)
        except Exception:  # noqa: BLE001 - "not durable" (or worse) goes to every waiter, as an ask's would
            failure = sys.exc_info()
            for future, _ in waiting:
                future.set_exception(failure)
            return
        refused = {id(record) for record in self._core.rejected_now}
        for future, records in waiting:
            bad = [record for record in records if id(record) in refused]
            if not bad:
                future.set(durability)
                continue
            # The database refused part of this write-ahead (its intent, or the request that lets a restart
            # resume it): it is not durable, so its create must not leave.
            error = NotDurableError(f"the database refused {', '.join(type(r).__name__ for r in bad)}")
            future.set_exception((NotDurableError, error, None))

    # writes (fire-and-forget) ----------------------------------------------------------------------

    def save(self, record: Record) -> None:
        """Store any record."""
        self._core.accept(record)

    def save_order(self, order: Order) -> None:
        """Store the latest state of an order (forward-only upsert)."""
        self._core.accept(order)

    def save_fill(self, fill: Fill) -> None:
        """Store a fill (once per exchange, symbol, trade id)."""
        self._core.accept(fill)

    def save_trade(self, trade: Trade) -> None:
        """Store the latest state of a request's trade."""
        self._core.accept(trade)

    def save_error(self, error: ErrorRecord) -> None:
        """Store an error record."""
        self._core.accept(error)

    def save_snapshot(self, snapshot: IndicatorSnapshot) -> None:
        """Store an indicator snapshot."""
        self._core.accept(snapshot)

    # control ---------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Batch interval boundary: commit pending writes; while degraded, maybe retry the database."""
        self._core.tick()

    def flush(self) -> Durability:
        """Barrier: everything accepted before this call is durable when the future resolves.

        Raises (in the future):
            NotDurableError: neither the database nor the spool could take the records.
        """
        self._settle()
        return self._core.flush()

    def health(self) -> HealthReport:
        """The current health."""
        self._settle()
        return self._core.report()

    # queries (ask down; raise DatabaseUnavailableError into the future while degraded) -------------

    def _query(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # A proxy call does not pass through `on_receive`: answer waiting write-aheads here too.
        self._settle()
        return self._core.query(fn, *args, **kwargs)

    def open_orders(self, pair: str | None = None) -> list[Order]:
        """Non-terminal orders, oldest first."""
        return self._query(open_orders, pair)

    def find_orders(self, **filters: Any) -> list[Order]:
        """`db.find_orders` with the given keyword filters."""
        return self._query(find_orders, **filters)

    def get_order(self, client_order_id: str) -> Order | None:
        """One order by client order id."""
        return self._query(get_order, client_order_id)

    def children_of(self, client_order_id: str) -> list[Order]:
        """The fallback orders of a primary order."""
        return self._query(children_of, client_order_id)

    def fills_of(self, client_order_id: str) -> list[Fill]:
        """The fills of one order."""
        return self._query(fills_of, client_order_id)

    def find_trades(self, **filters: Any) -> list[Trade]:
        """`db.find_trades` with the given keyword filters."""
        return self._query(find_trades, **filters)

    def get_trade(self, request_id: str) -> Trade | None:
        """The trade of one request."""
        return self._query(get_trade, request_id)

    def find_errors(self, **filters: Any) -> list[ErrorRecord]:
        """`db.find_errors` with the given keyword filters."""
        return self._query(find_errors, **filters)

    def fill_gaps(self, client_order_ids: list[str] | None = None) -> list[FillGap]:
        """Orders whose fills do not add up to their filled quantity."""
        return self._query(fill_gaps, client_order_ids)

    def recovery(self, pairs: list[str] | None = None) -> RecoveryState:
        """What crash recovery needs: unfinished requests, their orders and fills, orphan live orders."""
        return self._query(load_recovery, pairs)

    def id_namespace(self) -> str:
        """The database's client order id namespace (`db.id_namespace`)."""
        return self._query(id_namespace)

    def id_tag(self) -> str:
        """The tag of the database's client order ids (`db.id_tag`)."""
        return self._query(id_tag)

    def idempotency_keys(self, pair: str | None = None) -> list[str]:
        """Every idempotency key stored (of one pair, when given)."""
        return self._query(idempotency_keys, pair)

    def request_of(self, request_id: str) -> RequestRecord | None:
        """The stored request."""
        return self._query(request_of, request_id)


class PersistenceProxy(ActorMemberMixin, pykka.ActorProxy[PersistenceActor]):
    """Typed proxy of `PersistenceActor`."""

    save = proxy_method(PersistenceActor.save)
    save_order = proxy_method(PersistenceActor.save_order)
    save_fill = proxy_method(PersistenceActor.save_fill)
    save_trade = proxy_method(PersistenceActor.save_trade)
    save_error = proxy_method(PersistenceActor.save_error)
    save_snapshot = proxy_method(PersistenceActor.save_snapshot)
    tick = proxy_method(PersistenceActor.tick)
    flush = proxy_method(PersistenceActor.flush)
    health = proxy_method(PersistenceActor.health)
    open_orders = proxy_method(PersistenceActor.open_orders)
    find_orders = proxy_method(PersistenceActor.find_orders)
    get_order = proxy_method(PersistenceActor.get_order)
    children_of = proxy_method(PersistenceActor.children_of)
    fills_of = proxy_method(PersistenceActor.fills_of)
    find_trades = proxy_method(PersistenceActor.find_trades)
    get_trade = proxy_method(PersistenceActor.get_trade)
    find_errors = proxy_method(PersistenceActor.find_errors)
    fill_gaps = proxy_method(PersistenceActor.fill_gaps)


class PersistenceHandle:
    """What other components hold: cheap `tell`s for writes, futures for the barrier and queries."""

    def __init__(self, ref: pykka.ActorRef[PersistenceActor]) -> None:
        self.ref = ref
        self.proxy: PersistenceProxy = ref.proxy()  # type: ignore[assignment]

    def save(self, record: Record) -> None:
        """Fire-and-forget store of any record."""
        self.ref.tell(record)

    save_order = save_fill = save_trade = save_error = save_snapshot = save

    def save_many(self, records: Sequence[Record]) -> None:
        """Fire-and-forget store of several records, in order, as one message."""
        self.ref.tell(RecordBatch(tuple(records)))

    def write_ahead(self, record: Record) -> pykka.Future[Durability]:
        """Store `record` and resolve once it is durable, in one message (records told earlier follow with the
        next batch; `flush()` is the barrier for everything).

        Raises (in the future):
            NotDurableError: neither the database nor the spool could take the records.
        """
        done: pykka.Future[Durability] = pykka.ThreadingFuture()
        self.ref.tell(WriteAheadRecord(record, done))
        return done

    def write_ahead_then(
        self,
        record: Record,
        on_durable: Callable[[], None],
        on_failed: Callable[[BaseException], None],
        companions: Sequence[Record] = (),
    ) -> None:
        """Store `record` and its `companions` (stored in the same commit, ahead of it); once they are durable
        call `on_durable()` on the persistence thread — or `on_failed(error)` if they cannot be. Nothing waits:
        the caller goes on. Records told earlier follow with the next batch."""
        self.ref.tell(WriteAheadRecord(record, DurableCallback(on_durable, on_failed), tuple(companions)))

    def tick(self) -> None:
        """Fire-and-forget interval tick."""
        self.ref.tell(Tick())

    def flush(self) -> pykka.Future[Durability]:
        """The barrier: resolves once everything told before it is durable."""
        return self.proxy.flush()

    def stop(self, timeout: float = 30.0) -> None:  # float-ok: seconds
        """Flush and stop the actor, waiting at most `timeout` seconds."""
        self.ref.stop(block=True, timeout=timeout)


def start_persistence(
    url: str,
    spool_path: Path,
    *,
    listener: HealthListener | None = None,
    settings: PersistenceSettings | None = None,
    clock: Clock | None = None,
) -> PersistenceHandle:
    """Start the persistence actor and return its handle.

    `clock` (the engine's injected clock; the system clock when omitted) stamps the records persistence writes
    itself, such as the error record of a row the database refused.

    Raises:
        DatabaseUrlError: the URL is malformed (password masked). An unreachable database does not
            raise: the actor starts degraded and spools.
    """
    ref = PersistenceActor.start(url, spool_path, listener=listener, settings=settings, clock=clock)
    return PersistenceHandle(ref)
