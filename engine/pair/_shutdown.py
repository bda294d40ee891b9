"""The shutdown's cancel (`on_shutdown = cancel`) of one pair's requests. Pure."""

from __future__ import annotations

__all__ = ["SHUTDOWN_CANCEL"]

SHUTDOWN_CANCEL = "canceled at shutdown (on_shutdown = cancel)"
"""Why the shutdown cancels a request: the trade's note, and `requests.canceled` (a restart resumes no fallback)."""
