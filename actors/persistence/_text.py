"""Log text about database trouble: exceptions on one line, and failed asks of persistence said plainly."""

from __future__ import annotations

import pykka

__all__ = ["ask_failure", "lookup_failure", "one_line"]


def one_line(exc: BaseException | None) -> str:
    """``Type: message`` with every run of whitespace (a driver's newlines included) made one space."""
    return "" if exc is None else " ".join(f"{type(exc).__name__}: {exc}".split())


def ask_failure(exc: BaseException, timeout_s: float) -> str:  # float-ok: seconds
    """Why an ask of persistence failed, on one line: a pykka timeout's own text is only the number of seconds."""
    if isinstance(exc, pykka.Timeout):
        return f"persistence did not answer within {timeout_s:g} s (busy, or blocked on the database)"
    return one_line(exc)


def lookup_failure(
    cid: str,
    exc: BaseException,
    attempt: int,
    attempts: int,
    timeout_s: float,  # float-ok: seconds
    retry_ms: int,
) -> tuple[str, str, str]:
    """(level, message, why) of a failed stored-order lookup: WARNING while it is to be tried again, ERROR on the
    last attempt (the report it was for is then dropped); `why` is the failure alone, for an alert."""
    why = ask_failure(exc, timeout_s)
    if attempt < attempts:
        text = (
            f"stored order lookup of {cid} failed (attempt {attempt} of {attempts}): {why}; "
            f"tried again in {retry_ms / 1000:g} s"
        )
        return "WARNING", text, why
    text = (
        f"stored order lookup of {cid} failed on its last attempt ({attempt} of {attempts}): {why}; "
        "the report it was for is dropped"
    )
    return "ERROR", text, why
