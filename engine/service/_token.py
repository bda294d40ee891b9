"""The control API's bearer token and the file that tells clients where a running daemon listens.

Stdlib only: the CLI client imports this module and must stay light. The token is never logged or printed;
only where it lives (a file path or the name of the setting) is.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TokenSource",
    "endpoint_file_for",
    "endpoint_record",
    "ensure_token",
    "read_endpoint",
    "read_token_file",
    "remove_endpoint",
    "write_endpoint",
]

_log = logging.getLogger(__name__)  # stdlib (this module stays light); the daemon routes it into its log
_TOKEN_BYTES = 32
_MIN_TOKEN_CHARS = 16  # = engine.config MIN_API_TOKEN_CHARS, so check-config refuses what this does


@dataclass(frozen=True)
class TokenSource:
    """A resolved token and where it came from (``configuration`` or the path of its file)."""

    token: str
    origin: str
    generated: bool = False

    def __repr__(self) -> str:
        # The token itself stays out of every repr, so no log line or traceback can carry it.
        return f"TokenSource(origin={self.origin!r}, generated={self.generated})"


def read_token_file(path: Path) -> str:
    """Read a token file, refusing an empty one (a truncated file must not mean "no auth")."""
    return _valid(path.read_text(encoding="utf-8"), path)


def _valid(text: str, path: Path) -> str:
    token = text.strip()
    if len(token) < _MIN_TOKEN_CHARS:
        raise ValueError(
            f"the API token file {path} is invalid: its token is shorter than {_MIN_TOKEN_CHARS} characters"
        )
    return token


def ensure_token(configured: str | None, token_path: Path) -> TokenSource:
    """The token the daemon accepts: configured (file or env), else read from `token_path`, else generated.

    A generated token is written to a new file created with mode 0600, so no other user can read it even for
    an instant. An existing token file must be a regular file of this user, not a symbolic link (another user
    could point it at a token of their choosing, or this daemon's writes somewhere else): anything else is
    refused (ValueError). A token file readable by group or others may have been read: a WARNING says so and a
    new token replaces it.
    """
    if configured:
        if len(configured) < _MIN_TOKEN_CHARS:
            raise ValueError(f"api.token must be at least {_MIN_TOKEN_CHARS} characters")
        return TokenSource(configured, "configuration (api.token)")
    try:
        # O_NOFOLLOW, then fstat: the checks are on the very file read, not on a name that may change meanwhile.
        fd = os.open(token_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return _generate(token_path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            refused = f"the API token file {token_path} is a symbolic link: refused (make it a regular file)"
            raise ValueError(refused) from None
        raise
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"the API token file {token_path} is not a regular file: refused")
        if info.st_uid != os.geteuid():
            raise ValueError(
                f"the API token file {token_path} belongs to another user (uid {info.st_uid}): refused "
                "(remove it, or give it to the user running the daemon)"
            )
        text = handle.read()
    if info.st_mode & 0o077:
        _log.warning(
            "the API token file %s was readable by group or others (mode %s): its token may have been read; "
            "a new token replaces it",
            token_path,
            oct(stat.S_IMODE(info.st_mode)),
        )
        token_path.unlink()
        return _generate(token_path)
    return TokenSource(_valid(text, token_path), str(token_path))


def _generate(token_path: Path) -> TokenSource:
    token_path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    # O_EXCL: never through a file or a symbolic link that appeared meanwhile.
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        # A full disk left an empty file behind, refused as invalid at every later start: the file is ours (O_EXCL).
        with contextlib.suppress(OSError):
            token_path.unlink()
        raise
    return TokenSource(token, str(token_path), generated=True)


def endpoint_file_for(token_path: Path) -> Path:
    """Where a running daemon records its URL: next to the token file (a port of 0 is only known at bind)."""
    return token_path.parent / "api-endpoint.json"


def write_endpoint(path: Path, url: str) -> None:
    """Record the daemon's URL and pid for clients."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
    tmp.replace(path)


def endpoint_record(path: Path) -> tuple[str, int, bool] | None:
    """What the endpoint file says: the daemon's URL, its pid and whether that process still runs; None when
    there is no readable file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        url, pid = str(data["url"]), int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return url, pid, False  # left behind by a daemon that was killed
    except PermissionError:
        pass  # alive, owned by another user
    return url, pid, True


def read_endpoint(path: Path) -> str | None:
    """The URL of a daemon that is still running, or None (no file, unreadable, or its process is gone)."""
    record = endpoint_record(path)
    return record[0] if record is not None and record[2] else None


def remove_endpoint(path: Path) -> None:
    """Remove the endpoint file, if this process wrote it."""
    if read_endpoint(path) is not None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if data.get("pid") == os.getpid():
            path.unlink(missing_ok=True)
