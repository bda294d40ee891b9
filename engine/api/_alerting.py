"""How the engine raises an alert: a CRITICAL ``ALERT key: message`` log line, which never fails its caller.

The callers are the engine's own actors (the root: the supervisor of every other one) and the instance-lock
watch. The line goes to every loguru sink; a sink added with ``catch=False`` that raises (a full disk, a broken
pipe, a bug in a user's handler) would raise inside `logger.critical` — and out of the root, killing the actor
that supervises the engine over a log line. An alert that cannot be logged is written to stderr instead.
"""

from __future__ import annotations

import sys

from loguru import logger

from engine.logs import redact

__all__ = ["log_alert"]


def log_alert(key: str, message: str) -> None:
    """Log ``ALERT key: message`` at CRITICAL (bound ``alert=key``, which the daemon's alert sinks match on).

    Never raises: when a log sink raises, the alert (and why it could not be logged) goes to stderr, and when even
    that fails it is dropped — the caller (an actor) carries on.
    """
    try:
        logger.bind(alert=key).critical("ALERT {}: {}", key, message)
    except BaseException as exc:  # noqa: BLE001 - a SystemExit from a sink would make pykka stop every actor too
        _to_stderr(key, message, exc)


def _to_stderr(key: str, message: str, exc: BaseException) -> None:
    # The last resort: no logger (it just failed), one write, nothing that can raise past here.
    try:
        # Masked as a log line is: the message or the sink's error may quote a secret.
        line = redact(f"ALERT {key}: {message} (logging this alert failed: {type(exc).__name__}: {exc})")
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - stderr closed or broken: nowhere left to tell
        pass
