"""The persistence logic without threads: batching, group commit, outage spooling, replay and health.

`PersistenceActor` is a thin shell that feeds this class from its inbox. Everything here runs in one
thread (the actor's), which therefore owns the database connection and the spool file.

States:
- ok: records collect in `pending` and are committed in one transaction when `batch_size` is reached,
  on `tick()`, on `flush()`, before a query and on stop.
- degraded: the database is unreachable. Pending records and every new record go to the spool (in
  acceptance order); `tick()` retries the connection with exponential back-off (in ticks) and replays
  the spool, oldest first, batch by batch, before returning to ok.
- spool_full: degraded and the spool is past `spool_limit_bytes` (or its fsync fails, or records are held in
  memory). Records are still spooled (fills of live orders must not be lost) but the listener is told to stop
  taking new orders. Records held in memory go back to the spool on the reconnect attempts' ticks once it takes
  writes again; those still held when persistence stops are lost (counted in `lost`).
- failed: the actor stopped on an unexpected error (`failed`); the listener halts new orders.

Health, spooling and replay are in `OutageHandling` (`_outage.py`), mixed into `PersistenceCore`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import peewee
from loguru import logger

from actors.persistence._outage import OutageHandling, OutageLog, _one_line
from actors.persistence._spool import Spool, spool_ids
from actors.persistence._types import (
    Durability,
    Health,
    HealthListener,
    NotDurableError,
    PersistenceSettings,
)
from db import (
    BatchWriter,
    DatabaseSchemaError,
    DatabaseUnavailableError,
    DatabaseUrl,
    Record,
    SpoolIds,
    StorageError,
    is_bad_record,
    is_transient,
    make_database,
    migrate,
    open_connection,
    parse_url,
)
from engine.clock import Clock, SystemClock
from engine.domain import ErrorRecord, Order, Trade

T = TypeVar("T")


class PersistenceCore(OutageHandling):
    """Batched, outage-tolerant writer over one database connection and one spool file."""

    def __init__(
        self,
        url: str,
        spool_path: Path,
        *,
        listener: HealthListener | None = None,
        settings: PersistenceSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._spec: DatabaseUrl = parse_url(url)  # a bad URL fails here, in the caller's thread
        self._spool = Spool(spool_path)
        self._listener = listener
        self._settings = settings or PersistenceSettings()
        self._clock: Clock = clock or SystemClock()  # stamps the records persistence makes itself
        self._db: peewee.Database | None = None
        self._writer: BatchWriter | None = None
        self._pending: list[Record] = []
        self._memory: list[Record] = []  # spool refused (disk): last resort
        self._spooled = 0
        self._spool_ids = SpoolIds()
        self._degraded = False
        self._reported: Health | None = None
        self._spool_failed = False
        self._ticks_to_retry = 0
        self._backoff = 1
        self._attempted_ms = 0  # the clock's time at the last reconnect attempt
        self._outage_log = OutageLog(self._settings.outage_log_ms)
        self.committed = 0
        """Records committed to the database since start (after in-batch de-duplication: accepted)."""
        self.lost = 0
        self.rejected = 0
        self.rejected_now: list[Record] = []
        """The records the database refused in the last `commit_now` (its caller fails their write-aheads)."""

    # life cycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, migrate and replay any spool left by a previous run (or degrade if unreachable)."""
        # Requests of a previous run waiting in the spool: migrating an empty database must not give it client order
        # ids (a namespace, a tag) other than theirs, or a key used again would not find its order (`db.migrate`).
        self._spooled, self._spool_ids = spool_ids(self._spool.read())
        if self._spooled:
            logger.warning("persistence: spool from a previous run records={} path={}", self._spooled, self._spool.path)
        if self._try_connect() and self._replay():
            self._set_degraded(False, "database connected")
        else:
            self._set_degraded(True, "database unreachable at start")

    def stop(self) -> None:
        """Commit or spool whatever is pending, then release the connection and the spool."""
        with contextlib.suppress(NotDurableError):
            self.flush()  # while degraded, the last attempt to move records held in memory to the spool
        self._lose_memory()
        self._spool.close()
        self._disconnect()
        log = logger.error if self.lost or self.rejected else logger.info
        log(
            "persistence stopped committed={} spooled={} lost={} rejected={}",
            self.committed, self._spooled, self.lost, self.rejected,
        )  # fmt: skip

    # writes ----------------------------------------------------------------------------------------

    def accept(self, record: Record) -> None:
        """Take one record; it is committed with its batch (or spooled while degraded)."""
        if self._degraded:
            self._to_spool([record])
            return
        self._pending.append(record)
        if len(self._pending) >= self._settings.batch_size:
            self._commit_pending()

    def accept_many(self, records: Sequence[Record]) -> None:
        """Take several records in order."""
        for record in records:
            self.accept(record)

    def tick(self) -> None:
        """Interval boundary: commit the pending batch; while degraded, maybe retry the database."""
        if not self._degraded:
            self._commit_pending()
            return
        self._sync_spool()
        self._ticks_to_retry -= 1
        now_ms = self._clock.now_ms()
        if self._ticks_to_retry > 0 and now_ms - self._attempted_ms < self._settings.max_retry_ms:
            return
        self._attempted_ms = now_ms
        # Records held in memory (the spool refused them) go back to the spool even while the database stays
        # down: intake is halted while they are held, so no write-ahead's flush would ever retry them.
        self._retry_memory()
        try:
            back = self._try_connect() and self._replay()
        except Exception as exc:  # noqa: BLE001 - mid-run, a refused database (schema, permissions) is an outage
            # At start such a database is refused outright; here the spool still holds everything, so stay on it
            # (the actor must live on: fills of live orders keep coming) and keep retrying, slowly.
            logger.error("persistence: the database refused the reconnect, staying on the spool error={}",
                         _one_line(exc))  # fmt: skip
            self._disconnect()
            back = False
        if back:
            self._backoff = 1
            self._outage_log.over(now_ms)
            self._set_degraded(False, "database back, spool replayed")
        else:
            self._backoff = min(self._backoff * 2, self._settings.max_retry_ticks)
            self._ticks_to_retry = self._backoff

    def commit_now(self, records: Sequence[Record]) -> Durability:
        """Make `records` durable now, in one transaction of their own, ahead of the pending batch (which its
        tick commits; `supersede` dropped the pending rows these replace). A write-ahead's commit then holds only
        its own rows: its cost is the pages it dirties, and the rows of earlier messages doubled them (every
        upsert is forward-only and every insert idempotent, so the order in which rows reach the database never
        changes what it holds). Records holding a trade take the pending batch with them (see below).

        Raises:
            NotDurableError: records are only in memory (database down and spool refusing writes).
        """
        self.rejected_now = []
        batch = list(records)
        if self._pending and any(type(r) is Trade for r in batch):
            # A finished request's trade (a queued request's write-ahead carries its predecessor's): recovery does
            # not look at a finished request again, so the fills told before it go in this commit, or a crash
            # before the tick lost them for good (its order and trade rows saying they were filled).
            batch += self._pending
            self._pending = []
        if self._degraded:
            self._to_spool(batch)
        else:
            self._write(batch)  # a failure spools them (and the pending batch) and degrades
        return self._durability()

    def supersede(self, records: Sequence[Record]) -> None:
        """`records` (a write-ahead's, about to be committed ahead of the pending batch) replace the pending rows
        of the same orders and trades: call it when they arrive, so only rows told *before* them are dropped.

        Those are older: written after these by the next tick, an earlier state with the same fills and the same
        millisecond (OPEN after PENDING_CANCEL) would replace the newer one. Rows told after a write-ahead that
        waits for its group commit are newer, and stay (a fill's order row must not be lost to its cancel's).
        """
        orders = {r.client_order_id for r in records if isinstance(r, Order)}
        trades = {r.request_id for r in records if isinstance(r, Trade)}
        if not (orders or trades) or not self._pending:
            return
        self._pending = [
            r
            for r in self._pending
            if not (isinstance(r, Order) and r.client_order_id in orders)
            and not (isinstance(r, Trade) and r.request_id in trades)
        ]

    def flush(self) -> Durability:
        """Make everything accepted so far durable; say where.

        Raises:
            NotDurableError: records are only in memory (database down and spool refusing writes).
        """
        if not self._degraded:
            self._commit_pending()
        return self._durability()

    def _durability(self) -> Durability:
        if self._degraded:
            self._retry_memory()
            if not self._sync_spool():
                raise NotDurableError("the spool's fsync failed: its records may not be durable")
            if self._memory:
                raise NotDurableError(f"{len(self._memory)} records held only in memory: spool unwritable")
            return Durability.SPOOL
        return Durability.DATABASE

    def query(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a repository query on the owned connection after committing pending writes.

        Raises:
            DatabaseUnavailableError: the database is unreachable (writes are being spooled).
        """
        if not self._degraded:
            self._commit_pending()
        if self._degraded or self._db is None:
            raise DatabaseUnavailableError(f"database {self._spec.masked()} unavailable; writes are spooled")
        try:
            return fn(self._db, *args, **kwargs)
        except Exception as exc:
            if is_transient(exc):
                self._outage(exc)
                raise DatabaseUnavailableError(f"database {self._spec.masked()} unavailable: {exc}") from None
            raise

    # internals -------------------------------------------------------------------------------------

    def _commit_pending(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._write(batch)

    def _write(self, batch: list[Record], *, replay: bool = False) -> bool:
        """Commit `batch` in one transaction. True when it reached the database.

        On a connection failure a live batch goes to the spool; a replayed batch is already there, so
        the spool is left untouched. A batch the database rejects for its data is retried record by
        record so one bad record cannot block the others.
        """
        if self._writer is None:
            self._fail(None, batch, replay)
            return False
        try:
            stats = self._writer.write(batch)
        except Exception as exc:  # noqa: BLE001 - every failure is either spooled or isolated, never lost
            if not is_bad_record(exc):
                self._fail(exc, batch, replay)
                return False
            logger.warning(
                "persistence: batch rejected ({}), isolating bad records size={}", _one_line(exc), len(batch)
            )
            return self._isolate(batch, replay)
        self.committed += len(batch)
        logger.debug("persistence: batch committed records={} seconds={:.4f}", stats.records, stats.seconds)
        return True

    def _isolate(self, batch: list[Record], replay: bool) -> bool:
        assert self._writer is not None
        refused: list[str] = []
        try:
            return self._isolate_each(batch, replay, refused)
        finally:
            if refused:
                # One alert per batch: the database now differs from what the engine knows (an order's latest
                # state, a fill), and nothing else tells the operator (health stays ok: the database is up).
                logger.bind(alert="record_rejected").critical(
                    "ALERT {}: {}", "record_rejected", f"the database refused {len(refused)} record(s), the first "
                    f"{refused[0]} (see the log and the errors table, operation 'persist')",
                )  # fmt: skip

    def _isolate_each(self, batch: list[Record], replay: bool, refused: list[str]) -> bool:
        assert self._writer is not None
        for index, record in enumerate(batch):
            try:
                self._writer.write([record])
                self.committed += 1
            except Exception as exc:  # noqa: BLE001 - as in _write: spooled or isolated
                if not is_bad_record(exc):
                    self._fail(exc, batch[index:], replay)
                    return False
                self.rejected += 1
                self.rejected_now.append(record)
                refused.append(f"{type(record).__name__}: {_one_line(exc)}")
                logger.error("persistence: record rejected by the database error={} record={}", _one_line(exc), record)
                if not isinstance(record, ErrorRecord) or record.operation != "persist":
                    self._pending.append(
                        ErrorRecord(
                            operation="persist",
                            message=f"{type(record).__name__} rejected: {_one_line(exc)}",
                            context={"record": _dump(record)[:2000]},
                            time=self._clock.now(),
                        )
                    )
        return True

    def _try_connect(self) -> bool:
        self._disconnect()
        db = make_database(self._spec, connect_timeout=self._settings.connect_timeout_s)
        try:
            open_connection(db, self._spec)
            migrate(db, spool=self._spool_ids)
        except DatabaseSchemaError:
            # Permanent: refuse this database (nothing was written) rather than spool and retry forever.
            _close_quietly(db)
            raise
        except StorageError as exc:
            self._outage_log.failed(self._clock.now_ms(), " ".join(str(exc).split()))
            _close_quietly(db)
            return False
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._outage_log.failed(self._clock.now_ms(), _one_line(exc))
            _close_quietly(db)
            return False
        self._db = db
        self._writer = BatchWriter(db)
        return True

    def _disconnect(self) -> None:
        if self._writer is not None:
            self._writer.rollback_quietly()
        if self._db is not None:
            _close_quietly(self._db)
        self._db = None
        self._writer = None


def _close_quietly(db: peewee.Database) -> None:
    conn = getattr(db, "_state", None)
    raw = getattr(conn, "conn", None)
    if raw is not None:
        with contextlib.suppress(Exception):
            raw.close()
    db.dispose()


def _dump(record: Record) -> str:
    """The record as JSON for an error's context — or its repr, when it cannot even be serialised."""
    try:
        return record.model_dump_json()
    except (TypeError, ValueError):
        return repr(record)
