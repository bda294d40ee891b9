"""Binance.US listenKeys and their lifetime: valid for 60 minutes after creation or the last keepalive (pure).

Binance's user data stream docs: a listenKey is valid for 60 minutes after creation; a PUT (keepalive) extends it
by 60 minutes; a DELETE invalidates it. When a key expires, its stream gets a ``listenKeyExpired`` event and no
further events (the simulator then closes it; what the layer above does is `on_expire`'s business).

The book is the ``SimCore.listen_keys`` mapping (key → account name) that the REST layer fills and reads: it
records when each key was created and last kept alive, on the simulator's clock, and treats a key past its
deadline as gone the moment anyone looks at it. The REST keepalive handler validates the key with ``get`` and does
nothing else, so a ``get`` that finds a live key counts as its keepalive (``get`` is used for nothing else; the
layers above use ``in`` and ``[]``). `touch` is the explicit form, for a keepalive handler that calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, overload

__all__ = ["LISTEN_KEY_VALIDITY_MS", "ListenKeyBook"]

_T = TypeVar("_T")

LISTEN_KEY_VALIDITY_MS = 60 * 60_000
"""How long a listenKey lives after its creation or last keepalive."""


class ListenKeyBook(dict[str, str]):
    """listenKey → account name, with a deadline per key on the simulator's clock.

    Args:
        clock: The simulator's clock (ms).
        on_expire: Called with ``(key, account)`` once a key is found expired (after it left the book).
        on_add: Called after a key is added (the layer above arms its expiry sweep).
        validity_ms: A key's lifetime after creation or keepalive.
        on_close: Called with ``(key, account)`` after a DELETE took the key out of the book.
    """

    def __init__(
        self,
        clock: Callable[[], int],
        on_expire: Callable[[str, str], None],
        on_add: Callable[[], None] | None = None,
        validity_ms: int = LISTEN_KEY_VALIDITY_MS,
        on_close: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._on_expire = on_expire
        self._on_add = on_add
        self._on_close = on_close
        self.validity_ms = validity_ms
        self._deadline: dict[str, int] = {}

    def __setitem__(self, key: str, account: str) -> None:
        super().__setitem__(key, account)
        self._deadline[key] = self._clock() + self.validity_ms
        if self._on_add is not None:
            self._on_add()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._deadline.pop(key, None)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._expire_if_due(key, self._clock())
        return super().__contains__(key)

    def __getitem__(self, key: str) -> str:
        self._expire_if_due(key, self._clock())
        return super().__getitem__(key)

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        """The key's account, or `default` if it does not exist (or just expired); a live key is kept alive."""
        now = self._clock()
        self._expire_if_due(key, now)
        account = super().get(key)
        if account is None:
            return default
        self._deadline[key] = now + self.validity_ms
        return account

    def touch(self, key: str, now_ms: int) -> bool:
        """Keepalive: extend a live key's life to `now_ms` + validity; False if it does not exist (or expired)."""
        self._expire_if_due(key, now_ms)
        if not super().__contains__(key):
            return False
        self._deadline[key] = now_ms + self.validity_ms
        return True

    def deadline(self, key: str) -> int | None:
        """When `key` expires (None: no such key)."""
        return self._deadline.get(key)

    def expire_due(self, now_ms: int) -> list[str]:
        """Expire every key whose deadline has passed; returns them."""
        due = [key for key, deadline in self._deadline.items() if deadline <= now_ms]
        for key in due:
            self._expire_if_due(key, now_ms)
        return due

    def close(self, key: str) -> str | None:
        """A DELETE: `key` ends now for every user of the account (`on_close`); returns its account (None: none)."""
        account = super().get(key)
        if account is None:
            return None
        del self[key]
        if self._on_close is not None:
            self._on_close(key, account)
        return account

    def expire(self, key: str) -> str | None:
        """Expire `key` now, whatever its deadline; returns its account (None: no such key)."""
        account = super().get(key)
        if account is None:
            return None
        del self[key]
        self._on_expire(key, account)
        return account

    def _expire_if_due(self, key: str, now_ms: int) -> None:
        deadline = self._deadline.get(key)
        if deadline is not None and deadline <= now_ms:
            self.expire(key)
