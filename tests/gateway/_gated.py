"""What the gate-and-window tests share: a client whose calls pass their gate, and a moment just before a
new minute (not collected)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.venue import ResponseHook, pass_gate

MINUTE = 60_000
NEAR_BOUNDARY = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE + MINUTE - 50  # 50 ms before a new minute


class _GatedClient:
    """Every request passes the gate of its call, as the engine's client does (`engine.venue._client`): a create
    waits there for its commit; a cancel has none and answers at once."""

    def __init__(self, hook: ResponseHook) -> None:
        self.options: dict[str, Any] = {}

    async def private_post_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        await pass_gate()
        return {}

    async def private_delete_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        await pass_gate()
        return {}

    async def close(self) -> None:
        return None
