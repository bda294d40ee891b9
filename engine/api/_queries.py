"""Read-only queries of a running engine beyond single orders: health and balances (control API, metrics)."""

from __future__ import annotations

from typing import Any

__all__ = ["EngineQueries"]

_ASK_TIMEOUT_S = 15.0


class EngineQueries:
    """Mixed into `Engine`: answers from the root actor (health, balances)."""

    _root: Any

    def health(self) -> dict[str, Any]:
        """Health of every part: streams, database, gateway (queue, rate budget), halted or not."""
        return dict(self._root.proxy().health().get(timeout=_ASK_TIMEOUT_S))

    def balances(self) -> dict[str, Any]:
        """The account's balances as last read from the exchange (refreshed every minute)."""
        return dict(self._root.proxy().balances().get(timeout=_ASK_TIMEOUT_S))
