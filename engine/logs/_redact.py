"""Secret redaction for every log line, message, bound context and traceback alike."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "Redactor"]

MASK = "***"


class Redactor:
    """Replaces every registered secret — raw, URL-encoded and, for PEM keys, each base64 line — with ``***``.

    Thread-safe: secrets may be registered while other threads log.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._needles: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secrets: Iterable[str]) -> None:
        """Register secret values (empty values are ignored)."""
        needles = set(self._needles)
        for secret in secrets:
            if not secret:
                continue
            for form in _forms(secret):
                if form:
                    needles.add(form)
        with self._lock:
            self._needles = frozenset(needles)
            # Longest first, so a secret containing another secret is masked whole.
            ordered = sorted(needles, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(n) for n in ordered)) if ordered else None

    def clear(self) -> None:
        """Forget every registered secret (tests use this between cases)."""
        with self._lock:
            self._needles = frozenset()
            self._pattern = None

    def __call__(self, text: str) -> str:
        """Return `text` with every registered secret masked."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)


def _forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
    stripped = secret.strip()
    if stripped:
        forms.add(stripped)
    if "-----BEGIN" in secret:
        # A PEM may be logged piecemeal or re-wrapped: mask each body line and the joined body too.
        body = [ln.strip() for ln in secret.splitlines() if ln.strip() and not ln.startswith("-----")]
        forms.update(ln for ln in body if len(ln) >= 16)
        joined = "".join(body)
        if joined:
            forms.add(joined)
        forms.add(secret.replace("\n", "\\n"))
    return forms
