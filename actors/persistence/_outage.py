"""Outage handling for `PersistenceCore`: health reports, the degraded state, spooling and replay.

`OutageHandling` is mixed into `PersistenceCore` (see its module docstring for the states); like the rest of
the core it runs in the actor's thread only, which owns the spool file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from loguru import logger

from actors.persistence._text import one_line as _one_line
from actors.persistence._types import Health, HealthReport

if TYPE_CHECKING:
    from actors.persistence._spool import Spool
    from actors.persistence._types import HealthListener, PersistenceSettings
    from db import BatchWriter, Record
    from engine.clock import Clock

__all__ = ["OutageHandling", "OutageLog"]


class OutageHandling:
    """Mixed into `PersistenceCore`: health, and what happens while the database is unreachable."""

    _spool: Spool
    _listener: HealthListener | None
    _settings: PersistenceSettings
    _writer: BatchWriter | None
    _pending: list[Record]
    _memory: list[Record]
    _spooled: int
    _degraded: bool
    _reported: Health | None
    _spool_failed: bool
    _ticks_to_retry: int
    _backoff: int
    _attempted_ms: int
    _clock: Clock
    _outage_log: OutageLog
    lost: int
    _write: Callable[..., bool]
    _disconnect: Callable[[], None]

    # health ----------------------------------------------------------------------------------------

    def report(self) -> HealthReport:
        """The current health."""
        health = self._health()
        reason = "database reachable" if health is Health.OK else "database unreachable, spooling"
        return HealthReport(health, health is not Health.SPOOL_FULL, reason, self._spooled + len(self._memory))

    @property
    def degraded(self) -> bool:
        """True while writes go to the spool."""
        return self._degraded

    def _health(self) -> Health:
        if not self._degraded:
            return Health.OK
        if self._memory or self._spool_failed or self._spool.size >= self._settings.spool_limit_bytes:
            return Health.SPOOL_FULL
        return Health.DEGRADED

    def _notify(self, reason: str) -> None:
        health = self._health()
        if health is self._reported or self._reported is Health.FAILED:  # failed is final: the actor is stopping
            return
        self._reported = health
        report = HealthReport(health, health is not Health.SPOOL_FULL, reason, self._spooled + len(self._memory))
        log = logger.info if health is Health.OK else logger.warning
        log("persistence health={} reason={} spooled={}", health.value, reason, report.spooled)
        if self._listener is not None:
            try:
                self._listener(report)
            except Exception:  # noqa: BLE001 - a faulty listener must not stop persistence; logged
                logger.exception("persistence: health listener failed for health={}", health.value)

    def failed(self, error: BaseException | None) -> None:
        """The actor is stopping on an unexpected error: tell the listener (new orders must stop)."""
        self._reported = Health.FAILED
        report = HealthReport(Health.FAILED, False, f"persistence failed: {error!r}", self._spooled + len(self._memory))
        logger.error("persistence health={} reason={}", report.health.value, report.reason)
        if self._listener is not None:
            try:
                self._listener(report)
            except Exception:  # noqa: BLE001 - as in _notify
                logger.exception("persistence: health listener failed for health={}", report.health.value)

    def _sync_spool(self) -> bool:
        """fsync the spool; False (logged, health told) when the disk refuses: what it holds may not be durable,
        and no new order may count on it until a later fsync succeeds."""
        try:
            self._spool.sync()
        except OSError as exc:
            if not self._spool_failed:
                logger.error("persistence: spool fsync failed, its records may not be durable error={}", exc)
            self._spool_failed = True
            self._notify("spool fsync failed")
            return False
        if self._spool_failed:
            self._spool_failed = False
            self._notify("spool fsync works again")
        return True

    def _set_degraded(self, degraded: bool, reason: str) -> None:
        self._degraded = degraded
        self._notify(reason)

    # outage: spool and replay ---------------------------------------------------------------------

    def _fail(self, exc: BaseException | None, rest: Sequence[Record], replay: bool) -> None:
        if replay:
            # Counted with the failed reconnects (a line every 30 s at most): a database that takes the connection
            # but not the writes (its disk full) interrupts every replay, and logged a WARNING each 5 s.
            self._outage_log.failed(self._clock.now_ms(), f"replay interrupted: {_one_line(exc)}")
            self._disconnect()
        else:
            self._outage(exc, rest)

    def _outage(self, exc: BaseException | None, batch: Sequence[Record] = ()) -> None:
        if exc is not None:
            logger.warning("persistence: database error, switching to spool error={}", _one_line(exc))
        self._disconnect()
        pending, self._pending = self._pending, []
        self._to_spool([*batch, *pending])
        self._ticks_to_retry = self._backoff
        self._attempted_ms = self._clock.now_ms()  # the back-off's time cap counts from the outage's start
        self._set_degraded(True, f"database error: {type(exc).__name__ if exc else 'not connected'}")

    def _to_spool(self, records: Sequence[Record]) -> None:
        if not records:
            return
        if not self._memory:
            try:
                self._spool.append(records)
                self._spooled += len(records)
                self._notify("spooling")
                return
            except OSError as exc:
                logger.error("persistence: spool write failed, holding records in memory error={}", exc)
        room = self._settings.memory_limit - len(self._memory)
        self._memory.extend(records[:room])
        if len(records) > room:
            self.lost += len(records) - room
            logger.error(
                "persistence: memory buffer full, records lost={} total_lost={}", len(records) - room, self.lost
            )
        self._notify("spool unwritable")

    def _retry_memory(self) -> None:
        """Move the records held in memory to the spool (the disk may have room again), oldest first, then fsync
        them and tell the health (intake resumes). A batch at a time: while the disk is still full an attempt
        costs one batch's encoding, not the whole buffer's."""
        if not self._memory:
            return
        moved = 0
        size = self._settings.batch_size
        try:
            while moved < len(self._memory):
                chunk = self._memory[moved : moved + size]
                self._spool.append(chunk)  # all or nothing: a failed append leaves the spool as it was
                moved += len(chunk)
        except OSError:
            if not moved:
                return
        del self._memory[:moved]  # the rest stays behind them, in order (new records join it until it is empty)
        self._spooled += moved
        logger.warning("persistence: spool writable again, records moved from memory={} still held={}",
                       moved, len(self._memory))  # fmt: skip
        if self._sync_spool():
            self._notify("spool writable again")

    def _lose_memory(self) -> None:
        """Persistence stops with records held only in memory (the spool never took them back): they are lost."""
        if not self._memory:
            return
        self.lost += len(self._memory)
        logger.error("persistence: stopping with records held only in memory, lost={} (spool unwritable)",
                     len(self._memory))  # fmt: skip
        self._memory = []

    def _replay(self) -> bool:
        """Commit the spool (oldest first) and any memory-held records; clear them. False on failure."""
        if self._writer is None:
            return False
        self._retry_memory()
        if self._spooled:
            batch: list[Record] = []
            replayed = 0
            for record in self._spool.read():
                batch.append(record)
                if len(batch) >= self._settings.batch_size:
                    if not self._replay_batch(batch):
                        return False
                    replayed += len(batch)
                    batch = []
            if batch and not self._replay_batch(batch):
                return False
            replayed += len(batch)
            self._spool.clear()
            logger.info("persistence: spool replayed records={}", replayed)
            self._spooled = 0
        if self._memory:
            held, self._memory = self._memory, []
            if not self._replay_batch(held):
                self._memory = held
                return False
        return True

    def _replay_batch(self, batch: list[Record]) -> bool:
        return self._write(batch, replay=True)


class OutageLog:
    """The reconnect attempts' log while the database is unreachable: the first failure is a WARNING, then one
    WARNING per `every_ms` at most (counting the failed attempts since the last line, the others DEBUG), and one
    line when a reconnect succeeds again. Not a line per attempt: an outage would flood the log."""

    def __init__(self, every_ms: int) -> None:
        self._every_ms = every_ms
        self._since_ms: int | None = None  # the outage's first failed attempt (None: none failed)
        self._logged_ms = 0
        self._failed = 0  # attempts failed since the last line
        self._total = 0

    def failed(self, now_ms: int, error: str) -> None:
        """A connection attempt failed with `error` (one line)."""
        self._failed += 1
        self._total += 1
        if self._since_ms is None:
            self._since_ms = self._logged_ms = now_ms
            self._failed = 0
            logger.warning(
                "persistence: cannot connect, writes go to the spool and the connection is retried (a line every "
                "{:g} s at most while it fails) error={}", self._every_ms / 1000, error,
            )  # fmt: skip
        elif now_ms - self._logged_ms >= self._every_ms:
            logger.warning(
                "persistence: still cannot connect: {} failed attempts in the last {:.0f} s ({:.0f} s since the first) "
                "error={}", self._failed, (now_ms - self._logged_ms) / 1000, (now_ms - self._since_ms) / 1000, error,
            )  # fmt: skip
            self._logged_ms, self._failed = now_ms, 0
        else:
            logger.debug("persistence: cannot connect (attempt {}) error={}", self._total, error)

    def over(self, now_ms: int) -> None:
        """A connection attempt succeeded: one line if attempts had failed."""
        if self._since_ms is not None:
            logger.warning("persistence: connected again after {} failed attempts over {:.0f} s", self._total,
                           (now_ms - self._since_ms) / 1000)  # fmt: skip
        self._since_ms, self._failed, self._total = None, 0, 0
