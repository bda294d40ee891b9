"""Whether the SQLite database of ``database.url`` can be created and written where it is configured.

Checked for the commands that run the engine (the daemon, ``check-config``): a directory that does not exist and
cannot be created (``sqlite:////proc/nonexistent/engine.sqlite3``) passed check-config, and the daemon then died
on a FileNotFoundError traceback taking the database's instance lock.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["sqlite_location_problem"]


def sqlite_location_problem(url: str) -> str | None:
    """What stops the engine from creating and writing the SQLite database at `url`, or None (also for PostgreSQL).

    The engine creates a missing directory (and the file) at its first start, so a directory that does not exist
    yet is fine when the nearest one that does exist lets files be created in it. That is probed with a file that
    is never visible (an anonymous temporary file): permission bits say nothing for root or on /proc.
    """
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc:
        return None
    path_text = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path_text or path_text == ":memory:":
        return None
    path = Path(path_text)
    existing: Path | None = None
    try:
        if path.is_dir():
            return f"{path} is a directory; name a file in it, such as {path / 'engine.sqlite3'}"
        existing = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            return f"{existing} is not a directory, so {path} cannot be created"
        with tempfile.TemporaryFile(dir=existing or path.parent):
            pass
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            return f"{path} is not readable and writable by this user"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if existing != path.parent:
            where = f" in {existing}" if existing is not None else ""
            return f"the directory {path.parent} does not exist and cannot be created{where}: {reason}"
        return f"the database's directory {existing} does not let files be created in it: {reason}"
    return None
