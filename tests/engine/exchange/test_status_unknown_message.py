"""Found by a mutation audit: "execution status unknown" without a code (a body ccxt could not parse) is an unknown
outcome for a create, never a rejection (a rejection would leave an order that may exist untracked)."""

from __future__ import annotations

from engine.exchange import OutcomeUnknown
from engine.exchange._mapping import map_error


def test_execution_status_unknown_message_alone_is_an_unknown_outcome() -> None:
    msg = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
    assert isinstance(map_error(message=msg, operation="create_order"), OutcomeUnknown)
