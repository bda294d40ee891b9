"""Append-only JSON-lines spool: where writes wait, durably, while the database is unreachable.

One line per record: `{"k": "<kind>", "d": {...}}`. Lines reach the OS on every append (a kill -9 loses
nothing) and are fsynced on `sync()` (a power cut loses at most what followed the last sync). A torn last
line from a crash mid-write is skipped on reading; it was never acknowledged as durable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson
from loguru import logger
from pydantic import ValidationError

from db import Record
from engine.domain import ErrorRecord, Fill, IndicatorSnapshot, Order, RequestRecord, Trade

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
        self._file: IO[bytes] | None = None
        self._dirty = False
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
        data = b"".join(lines)
        handle.write(data)
        handle.flush()
        self._size += len(data)
        self._dirty = True

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
        self._fsync_dir()

    def close(self) -> None:
        """Sync and close the file handle (the spool contents stay)."""
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None

    def _open(self) -> IO[bytes]:
        if self._file is None:
            created = not self.path.exists()
            self._file = self.path.open("ab")
            if created:
                self._fsync_dir()  # make the new directory entry itself durable
            elif self._size and not self._ends_with_newline():
                # A crash tore the last line. Terminate it so the next record starts on its own line
                # (the torn line is then skipped as corrupt instead of swallowing the next record).
                self._file.write(b"\n")
                self._size += 1
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
