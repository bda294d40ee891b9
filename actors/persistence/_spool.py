"""Append-only JSON-lines spool: where writes wait, durably, while the database is unreachable.

One line per record: `{"k": "<kind>", "d": {...}}`. Lines reach the OS on every append (a kill -9 loses
nothing) and are fsynced on `sync()` (a power cut loses at most what followed the last sync). A torn last
line from a crash mid-write is skipped on reading; it was never acknowledged as durable. An append the disk
refuses part-way is undone (the file cut back to its size before it), so its retry starts on a line of its own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from io import FileIO
from pathlib import Path
from typing import Any

import orjson
from loguru import logger
from pydantic import ValidationError

from db import Record, SpoolIds
from engine.domain import ErrorRecord, Fill, IndicatorSnapshot, Order, OrderRole, RequestRecord, Trade
from engine.exchange import key_digest, parse_client_order_id

KINDS: dict[str, type[Any]] = {
    "order": Order,
    "fill": Fill,
    "trade": Trade,
    "error": ErrorRecord,
    "snapshot": IndicatorSnapshot,
    "request": RequestRecord,
}
_KIND_OF: dict[type[Any], str] = {cls: kind for kind, cls in KINDS.items()}


def encode(record: Record) -> bytes:
    """One spool line (with its newline) for `record`; decimals are written as exact strings."""
    return orjson.dumps({"k": _KIND_OF[type(record)], "d": record.model_dump(mode="json")}) + b"\n"


def decode(line: bytes) -> Record:
    """The record stored in one spool line.

    Raises:
        ValueError: the line is not a valid record.
    """
    try:
        obj = orjson.loads(line)
        cls = KINDS[obj["k"]]
        record: Record = cls.model_validate(obj["d"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
        raise ValueError(f"bad spool line: {exc}") from None
    return record


class Spool:
    """The spool file. Owned by the persistence actor's thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: FileIO | None = None
        self._dirty = False
        self._torn = False
        """The file ends in part of a line (a crash, or an append that failed and could not be undone): the next
        append starts with a newline, so the fragment is skipped as corrupt instead of swallowing its first record."""
        self._size = self.path.stat().st_size if self.path.exists() else 0

    @property
    def size(self) -> int:
        """Bytes currently in the spool (tracked, not stat'ed: it is asked on every spooled write)."""
        return self._size

    def append(self, records: Sequence[Record]) -> None:
        """Write `records` to the end of the spool (to the OS, not yet fsynced).

        Raises:
            OSError: the disk refused the write (full, read-only...).
        """
        if not records:
            return
        handle = self._open()
        lines = []
        for record in records:
            try:
                lines.append(encode(record))
            except (TypeError, ValueError) as exc:
                # A record nothing can encode (it would be refused by any database too) must not take the
                # others down with it: it is logged in full and left out.
                logger.error("spool: record cannot be encoded, left out error={} record={!r}", exc, record)
        data = (b"\n" if self._torn else b"") + b"".join(lines)
        written = 0
        try:
            # Unbuffered: every byte the loop counts is in the file, none waits in a buffer to be written later.
            while written < len(data):
                count = handle.write(memoryview(data)[written:])
                if not count:  # never for a regular file; a loop that cannot end would stall persistence
                    raise OSError(f"spool: write made no progress path={self.path}")
                written += count
        except OSError:
            self._undo(written)
            raise
        self._size += len(data)
        self._dirty = True
        self._torn = False

    def _undo(self, written: int) -> None:
        """Cut the file back to its size before a failed append: part of a record must not stay at its end, where
        the retry of the same records would be appended onto it (the merged line is corrupt and skipped at replay,
        losing a record). The records failed as a whole; the caller keeps them all.

        Cut even when no write counted bytes (`written`, the sum of the completed writes): a write may have put some
        bytes in before failing, and cutting to the size the file already has changes nothing."""
        assert self._file is not None
        self._dirty = True  # the next sync makes the cut durable too (the bytes may already be on their way)
        try:
            os.ftruncate(self._file.fileno(), self._size)
        except OSError as exc:
            # What the file ends with is unknown: start the next append on a new line. At worst that leaves an
            # empty line, which reading skips.
            self._size += written
            self._torn = True
            logger.error("spool: a failed append could not be cut off, next record starts a new line error={}", exc)

    def sync(self) -> None:
        """fsync everything appended so far."""
        if self._file is not None and self._dirty:
            os.fsync(self._file.fileno())
            self._dirty = False

    def read(self) -> Iterator[Record]:
        """Every valid record, in the order written. A torn or corrupt line is logged and skipped."""
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    logger.warning("spool: skipping torn last line path={} line={}", self.path, number)
                    return
                if line == b"\n":  # a failed append that could not be cut off had ended its line already (`_undo`)
                    continue
                try:
                    yield decode(line)
                except ValueError as exc:
                    logger.error("spool: skipping corrupt line path={} line={} error={}", self.path, number, exc)

    def clear(self) -> None:
        """Empty the spool after its records are committed to the database."""
        self.close()
        with self.path.open("wb") as handle:
            os.fsync(handle.fileno())
        self._size = 0
        self._torn = False
        self._fsync_dir()

    def close(self) -> None:
        """Sync and close the file handle (the spool contents stay)."""
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None

    def _open(self) -> FileIO:
        if self._file is None:
            created = not self.path.exists()
            self._file = self.path.open("ab", buffering=0)
            if created:
                self._fsync_dir()  # make the new directory entry itself durable
            # A crash may have torn the last line: the next append terminates it, in the same write as its records
            # (a disk refusing a write of its own would leave the file without the newline and the handle open).
            self._torn = not created and bool(self._size) and not self._ends_with_newline()
        return self._file

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def _fsync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def spool_ids(records: Iterable[Record]) -> tuple[int, SpoolIds]:
    """How many `records` (a spool's), and what the engine's own client order ids among them were made with
    (`db.migrate`): without a namespace (an order's digest is the one its request's key gives with none), or with
    no tag. Orders of others (external: placed by hand, another engine's) say nothing of this database's ids."""
    count, unscoped_digests, digests, untagged = 0, set(), set(), False
    for record in records:
        count += 1
        if isinstance(record, RequestRecord):
            with contextlib.suppress(ValueError):  # a key or pair that makes no id: it made no order either
                unscoped_digests.add(key_digest(record.request.idempotency_key, record.request.pair))
        elif isinstance(record, Order) and record.role is not OrderRole.EXTERNAL:
            parsed = parse_client_order_id(record.client_order_id)
            if parsed is not None and not parsed.tag:
                untagged = True
                digests.add(parsed.digest)
    return count, SpoolIds(unscoped=bool(unscoped_digests & digests), untagged=untagged)
